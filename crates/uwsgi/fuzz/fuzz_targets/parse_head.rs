//! Arbitrary bytes into the uwsgi packet parser: a parsed head re-encodes and reparses to the
//! same variables; every shorter prefix past the header asks for more.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_uwsgi::fuzzing::parse_head_round_trip(data);
});
