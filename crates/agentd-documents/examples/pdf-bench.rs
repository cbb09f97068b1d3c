//! Text-layer pages per second on real PDFs, through the same PDFium thread
//! and reading-order code as the server.
//!
//! `pdf-bench [--print] [--rounds N] FILE...` (library: AGENTD_PDFIUM_PATH,
//! default ./data/lib/libpdfium.so). `--print` writes the text instead.

use std::path::PathBuf;
use std::time::Instant;

use agentd_documents::{pdf_text, PdfReader};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let print = take_flag(&mut args, "--print");
    let rounds: usize = take_value(&mut args, "--rounds")
        .map(|v| v.parse().expect("--rounds takes a number"))
        .unwrap_or(5);
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
        // The best of `rounds` runs, as the figures in NOTES.md were taken;
        // CPU time too, which a busy machine does not inflate.
        let mut best = f64::MAX;
        let mut best_cpu = f64::MAX;
        let mut pages = 0;
        for _ in 0..rounds {
            let started = Instant::now();
            let cpu_before = process_cpu_seconds();
            pages = reader
                .extract(bytes.clone())
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"))
                .len();
            best = best.min(started.elapsed().as_secs_f64());
            if let (Some(before), Some(after)) = (cpu_before, process_cpu_seconds()) {
                best_cpu = best_cpu.min(after - before);
            }
        }
        let cpu = if best_cpu < f64::MAX && best_cpu > 0.0 {
            format!(
                ", CPU {:.1} ms, {:.0} pages per CPU-second",
                best_cpu * 1000.0,
                pages as f64 / best_cpu
            )
        } else {
            String::new()
        };
        println!(
            "{path}: {pages} pages, best of {rounds}: wall {:.1} ms, {:.0} pages/s{cpu}",
            best * 1000.0,
            pages as f64 / best
        );
    }
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
