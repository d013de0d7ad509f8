//! Arbitrary bytes as a name-value stream: what parses re-encodes (never longer) and reparses
//! to the same pairs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_fastcgi::fuzzing::name_value_pairs(data);
});
