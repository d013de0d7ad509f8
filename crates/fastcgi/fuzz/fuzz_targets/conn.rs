//! Arbitrary bytes as a peer's input to the sans-io connection: never a panic, at most one
//! close, the request limits always hold, and nothing is read after the close.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_fastcgi::fuzzing::connection(data);
});
