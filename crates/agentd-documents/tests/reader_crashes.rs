//! A crash or a hang inside the PDF library ends a reader process, never
//! the process that asked: real reader processes, killed with real signals
//! (SIGSEGV as a crash inside PDFium would be, SIGSTOP for a hang).
//!
//! To kill a reader at a known point of a request, the tests stop it
//! (SIGSTOP) first: a stopped reader cannot answer, and a SIGSEGV sent to
//! it is delivered when it is continued.
//!
//! Rust's runtime catches SIGSEGV to report stack overflows; on any other
//! SIGSEGV its handler restores the default action and returns, so that
//! the faulting instruction faults again and the process dies as it would
//! without the handler (that is what a crash inside PDFium does). A SIGSEGV
//! sent with kill(1) faults nothing, so the first one only restores the
//! default: each reader is sent one while it waits for a request, and the
//! test waits until `/proc` says SIGSEGV is no longer caught. The next one
//! kills it as a crash would.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_documents::{DocumentError, PageRange, PdfReader, PdfSettings};
use common::{fixture, library, reader_command, settings};

/// Waiting for a process to change state gives up after this long; the
/// tests never depend on anything happening sooner.
const PATIENCE: Duration = Duration::from_secs(300);

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < PATIENCE,
            "waited {PATIENCE:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// From `/proc/PID/stat`: the state letter and user + system CPU ticks;
/// `None` once the process is gone.
fn stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((state, ticks))
}

/// Whether the process has a handler for SIGSEGV (signal 11, bit 10 of
/// `SigCgt` in `/proc/PID/status`).
fn catches_segv(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let caught = status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .map(|mask| u64::from_str_radix(mask.trim(), 16).unwrap())
        .unwrap();
    caught & (1 << 10) != 0
}

/// Makes the next SIGSEGV fatal to a waiting reader (see the module
/// documentation).
async fn make_segv_fatal(pid: u32) {
    if !catches_segv(pid) {
        return;
    }
    signal(pid, "SEGV");
    wait_until("SIGSEGV to be no longer caught", || !catches_segv(pid)).await;
    assert!(alive(pid), "a reader survives the first SIGSEGV sent to it");
}

fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// Bytes the process has written (its answers), from `/proc/PID/io`.
fn written(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|line| line.strip_prefix("wchar: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

fn is_busy(reader: &PdfReader, pid: u32) -> bool {
    reader.readers().iter().any(|r| r.pid == pid && r.busy)
}

fn only_reader(reader: &PdfReader) -> u32 {
    let readers = reader.readers();
    assert_eq!(readers.len(), 1, "{readers:?}");
    readers[0].pid
}

/// The 36-page Debian manual, 50 times over: 1,800 real pages, made by
/// PDFium itself, long enough to read that a reader is caught reading it.
async fn large_pdf(reader: &PdfReader) -> Arc<[u8]> {
    let manual = std::fs::read("/usr/share/doc/libtasn1-doc/libtasn1.pdf")
        .expect("libtasn1-doc (scripts/install-deps.sh)");
    let ranges = vec![PageRange { first: 1, last: 36 }; 50];
    reader.select_pages(manual, ranges).await.unwrap().into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_killed_while_reading_is_replaced_and_the_request_retried() {
    let reader = PdfReader::new(PdfSettings {
        readers: 1,
        ..settings()
    });
    let large = large_pdf(&reader).await;
    let mut attempts = 0;
    let crashed = loop {
        attempts += 1;
        let pid = only_reader(&reader);
        make_segv_fatal(pid).await;
        let answers_before = written(pid);
        let ticks_before = stat(pid).unwrap().1;
        let request = tokio::spawn({
            let (reader, large) = (reader.clone(), large.to_vec());
            async move { reader.extract(large).await }
        });
        // Reading: given the request and using the CPU (10 ms ticks).
        wait_until("the reader to read", || {
            is_busy(&reader, pid) && stat(pid).is_some_and(|(_, t)| t > ticks_before + 2)
        })
        .await;
        signal(pid, "STOP");
        let answered = written(pid) > answers_before;
        if !answered {
            signal(pid, "SEGV");
        }
        signal(pid, "CONT");
        let pages = request
            .await
            .unwrap()
            .expect("the request, retried, succeeds");
        assert_eq!(pages.len(), 1800);
        assert!(pages.iter().all(|p| !p.lines.is_empty()));
        if !answered {
            break pid;
        }
        // It had answered before it could be stopped: try again.
        assert!(attempts < 20, "the reader always answered first");
    };
    wait_until("the crashed reader to be reaped", || !alive(crashed)).await;
    let replacement = only_reader(&reader);
    assert_ne!(replacement, crashed);
    assert!(alive(replacement));
    // The pool goes on with its new reader.
    let pages = reader.extract(fixture("three-pages.pdf")).await.unwrap();
    assert_eq!(pages.len(), 3);
    assert_eq!(only_reader(&reader), replacement);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_that_kills_two_readers_is_blamed_and_the_pool_recovers() {
    let reader = PdfReader::new(PdfSettings {
        readers: 2,
        ..settings()
    });
    let three = fixture("three-pages.pdf");
    reader.extract(three.clone()).await.unwrap();
    let first = only_reader(&reader);
    make_segv_fatal(first).await;
    signal(first, "STOP");
    let doomed = tokio::spawn({
        let (reader, three) = (reader.clone(), three.clone());
        async move { reader.extract(three).await }
    });
    wait_until("the request to reach the first reader", || {
        is_busy(&reader, first)
    })
    .await;
    // While that reader hangs, other requests are served by a second one.
    let table = reader.extract(fixture("table.pdf")).await.unwrap();
    assert_eq!(table.len(), 1);
    let readers = reader.readers();
    let second = readers.iter().find(|r| r.pid != first).unwrap().pid;
    assert_eq!(readers.len(), 2, "{readers:?}");
    // The first crashes; the request is retried on the second, which
    // crashes too.
    make_segv_fatal(second).await;
    signal(second, "STOP");
    signal(first, "SEGV");
    signal(first, "CONT");
    wait_until("the retry to reach the second reader", || {
        is_busy(&reader, second)
    })
    .await;
    signal(second, "SEGV");
    signal(second, "CONT");
    let error = doomed.await.unwrap().unwrap_err();
    assert!(matches!(error, DocumentError::ReaderCrashed), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the PDF library crashed reading this PDF"
    );
    assert!(error.is_caller_fault(), "the document is blamed");
    wait_until("both readers to be reaped", || {
        !alive(first) && !alive(second)
    })
    .await;
    assert_eq!(reader.readers(), []);
    // Later requests start fresh readers.
    let pages = reader.extract(three).await.unwrap();
    assert_eq!(pages.len(), 3);
    let fresh = only_reader(&reader);
    assert!(fresh != first && fresh != second);
}

#[tokio::test]
async fn a_hung_reader_is_killed_at_the_deadline_and_replaced() {
    let reader = PdfReader::new(PdfSettings {
        readers: 1,
        timeout: Duration::from_secs(5),
        ..settings()
    });
    let three = fixture("three-pages.pdf");
    reader.extract(three.clone()).await.unwrap();
    let hung = only_reader(&reader);
    signal(hung, "STOP");
    let error = reader.extract(three.clone()).await.unwrap_err();
    assert!(matches!(error, DocumentError::ReadTimedOut(5)), "{error:?}");
    assert_eq!(error.to_string(), "reading the PDF took longer than 5 s");
    wait_until("the hung reader to be killed", || !alive(hung)).await;
    assert_eq!(reader.readers(), []);
    assert_eq!(reader.extract(three).await.unwrap().len(), 3);
    assert_ne!(only_reader(&reader), hung);
}

fn reader_program() -> String {
    reader_command().program.to_string_lossy().into_owned()
}

#[test]
fn a_reader_exits_when_its_input_ends() {
    let mut child = Command::new(reader_program())
        .arg("--library")
        .arg(library())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Its hello: a frame of one byte (ready).
    let mut hello = [0; 5];
    child.stdout.take().unwrap().read_exact(&mut hello).unwrap();
    assert_eq!(hello, [1, 0, 0, 0, 0]);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

#[tokio::test]
async fn an_orphaned_reader_exits_even_with_its_input_open() {
    // sh starts a reader on our pipe, as its parent, and exits: the reader
    // is orphaned while its stdin stays open (this test holds the other end).
    let script = r#"exec 3<&0
AGENTD_PDF_READER_PARENT=$$ "$0" --library "$1" <&3 3<&- >/dev/null & echo $!"#;
    let mut shell = Command::new("sh")
        .args(["-c", script, &reader_program()])
        .arg(library())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = shell.stdin.take().unwrap();
    let mut said = String::new();
    shell
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    assert!(shell.wait().unwrap().success());
    let pid: u32 = said.trim().parse().unwrap();
    wait_until("the orphaned reader to exit", || !alive(pid)).await;
    // Its input was open all along.
    input.flush().unwrap();
    drop(input);
}
