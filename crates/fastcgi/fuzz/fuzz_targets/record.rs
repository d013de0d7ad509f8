//! Arbitrary bytes into the record decoder: consumed + rest == len for every record,
//! decode(encode(x)) == x, and decoding in two pieces gives what decoding whole gives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_fastcgi::fuzzing::record_decoder(data);
});
