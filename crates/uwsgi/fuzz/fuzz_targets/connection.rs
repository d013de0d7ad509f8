//! Arbitrary bytes through the sans-io connection in pieces: one request at most, no body byte
//! past CONTENT_LENGTH, exactly one close, no input wanted after it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_uwsgi::fuzzing::connection_events(data);
});
