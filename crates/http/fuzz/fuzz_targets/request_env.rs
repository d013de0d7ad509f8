//! Arbitrary bytes as an HTTP/1.x request head, parsed the way hyper does (httparse, then the
//! `http` types), then turned into CGI variables: see `gatehouse_http::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = req.parse(data) else {
        return;
    };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return;
    };
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .version(if version == 0 {
            http::Version::HTTP_10
        } else {
            http::Version::HTTP_11
        });
    let mut content_length = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            content_length = std::str::from_utf8(h.value).ok().and_then(|v| v.parse().ok());
        }
        builder = builder.header(h.name, h.value);
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    gatehouse_http::fuzzing::request_to_env(&parts, content_length);
});
