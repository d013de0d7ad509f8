//! Arbitrary bytes through the head and body decoders in pieces: consumed + rest == len, and no
//! body byte past CONTENT_LENGTH.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_scgi::fuzzing::decode_stream_accounting(data);
});
