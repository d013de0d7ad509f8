//! Arbitrary bytes as a CGI script's output: the head parser gives one answer whatever
//! arrives first, and what it accepts is valid on the wire.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_channel_request::fuzzing::cgi_head(data);
});
