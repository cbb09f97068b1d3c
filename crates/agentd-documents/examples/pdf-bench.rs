//! Text-layer pages per second on real PDFs, through the same PDFium thread
//! and reading-order code as the server, and pages rendered (to PNG, at the
//! resolution Document Insights sends to models) per second.
//!
//! `pdf-bench [--print] [--rounds N] [--dpi D] FILE...` (library:
//! AGENTD_PDFIUM_PATH, default ./data/lib/libpdfium.so). `--print` writes
//! the text instead. `--dpi 0` skips rendering.

use std::path::PathBuf;
use std::time::Instant;

use agentd_documents::{pdf_text, PageBatch, PdfReader, RenderPages};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let print = take_flag(&mut args, "--print");
    let rounds: usize = take_value(&mut args, "--rounds")
        .map(|v| v.parse().expect("--rounds takes a number"))
        .unwrap_or(5);
    let dpi: u16 = take_value(&mut args, "--dpi")
        .map(|v| v.parse().expect("--dpi takes a number"))
        .unwrap_or(100);
    let library = std::env::var_os("AGENTD_PDFIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data/lib/libpdfium.so"));
    let reader = PdfReader::new(library, u32::MAX);
    for path in &args {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        if print {
            let pages = reader
                .extract(bytes)
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            print!("{}", pdf_text(&pages));
            continue;
        }
        // Wall time: the best of `rounds` runs, as the figures in NOTES.md
        // were taken. CPU time (which a busy machine inflates far less) over
        // all rounds together, since the clock ticks only every 10 ms.
        let mut best = f64::MAX;
        let mut pages = 0;
        let cpu_before = process_cpu_seconds();
        for _ in 0..rounds {
            let started = Instant::now();
            pages = reader
                .extract(bytes.clone())
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"))
                .len();
            best = best.min(started.elapsed().as_secs_f64());
        }
        let cpu = match (cpu_before, process_cpu_seconds()) {
            (Some(before), Some(after)) if after > before => {
                let per_round = (after - before) / rounds as f64;
                format!(
                    ", CPU {:.1} ms a round, {:.0} pages per CPU-second",
                    per_round * 1000.0,
                    pages as f64 / per_round
                )
            }
            _ => String::new(),
        };
        println!(
            "{path}: {pages} pages, best of {rounds}: wall {:.1} ms, {:.0} pages/s{cpu}",
            best * 1000.0,
            pages as f64 / best
        );
        if dpi > 0 {
            render(&reader, path, bytes, pages as u32, dpi).await;
        }
    }
}

/// Renders every page once (text layer, character boxes and a PNG each),
/// as a batch of Document Insights does.
async fn render(reader: &PdfReader, path: &str, bytes: Vec<u8>, pages: u32, dpi: u16) {
    let range = PageBatch {
        first: 1,
        count: pages,
        render: RenderPages::All,
        dpi,
    };
    let started = Instant::now();
    let rendered = reader
        .pages(bytes.into(), range)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let seconds = started.elapsed().as_secs_f64();
    let png_bytes: usize = rendered
        .iter()
        .filter_map(|p| p.image.as_ref())
        .map(|i| i.png.len())
        .sum();
    println!(
        "{path}: {} pages rendered at {dpi} DPI in {:.1} ms, {:.1} pages/s, {} KiB of PNG a page",
        rendered.len(),
        seconds * 1000.0,
        rendered.len() as f64 / seconds,
        png_bytes / rendered.len().max(1) / 1024
    );
}

/// User + system CPU time of this process (Linux `/proc/self/stat`, in
/// clock ticks of 1/100 s).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    let before = args.len();
    args.retain(|a| a != flag);
    args.len() != before
}

fn take_value(args: &mut Vec<String>, flag: &str) -> Option<String> {
    let at = args.iter().position(|a| a == flag)?;
    args.remove(at);
    (at < args.len()).then(|| args.remove(at))
}
