//! Arbitrary bytes into the SCGI head parser: a parsed head re-encodes to exactly the consumed
//! bytes and reparses to itself; every shorter prefix asks for more.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_scgi::fuzzing::parse_head_round_trip(data);
});
