//! `wsgi.file_wrapper` streams a 100 MiB file in blocks with bounded memory. Its own test binary,
//! so that the process's peak resident size measures this request alone.

mod support;

use std::io::Write;

use gatehouse_wsgi::FILE_WRAPPER_MAX_BLOCK;
use sha2::{Digest, Sha256};
use support::{config, load, Call, End, Record};

const SIZE: usize = 100 * 1024 * 1024;

/// Peak resident set size of this process, in bytes (Linux `VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

#[tokio::test]
async fn streams_100_mib_in_blocks_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let mut digest = Sha256::new();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for i in 0..SIZE / block.len() {
            block
                .iter_mut()
                .enumerate()
                .for_each(|(j, b)| *b = (i * 31 + j) as u8);
            f.write_all(&block).unwrap();
            digest.update(&block);
        }
        f.flush().unwrap();
    }
    let want = support::hex(&digest.finalize());

    let app = load("wsgi_cases.py", "file_wrapper", config(2));
    // Warm up (interpreter, module, first request) before taking the baseline.
    let small = dir.path().join("small.bin");
    std::fs::write(&small, b"warm").unwrap();
    let warm = Call::get("/").var("HTTP_X_FILE", &small.display().to_string());
    assert_eq!(warm.run(&app).await.text(), "warm");
    let before = peak_rss();

    let rec = Record::new();
    let mut call = Call::get("/")
        .var("HTTP_X_FILE", &path.display().to_string())
        .var("HTTP_X_RECORD", &rec.header());
    call.keep_body = false;
    let a = call.run(&app).await;
    let grown = peak_rss().saturating_sub(before);

    assert_eq!((a.status(), a.end), (200, End::Finish));
    assert_eq!(a.header("content-length"), Some(SIZE.to_string()));
    assert_eq!(a.body_len, SIZE as u64);
    assert_eq!(a.body_sha256, want);
    let largest = a.chunks.iter().copied().max().unwrap_or(0);
    assert!(
        largest <= FILE_WRAPPER_MAX_BLOCK,
        "a {largest}-byte chunk: the file was not streamed in blocks"
    );
    assert!(
        a.chunks.len() >= SIZE / FILE_WRAPPER_MAX_BLOCK,
        "{} chunks",
        a.chunks.len()
    );
    assert!(
        grown < 32 * 1024 * 1024,
        "peak memory grew by {grown} bytes while streaming"
    );
    assert_eq!(
        rec.lines(),
        vec!["file closed"],
        "the wrapper's close() closes the file"
    );
}
