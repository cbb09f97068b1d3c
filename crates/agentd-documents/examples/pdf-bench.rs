//! Text-layer pages per second on real PDFs, through the same reader
//! processes, pipe protocol and reading-order code as the server, and pages
//! rendered (to PNG, at the resolution Document Insights sends to models)
//! per second.
//!
//! `pdf-bench [--print] [--rounds N] [--dpi D] [--readers R] [--at-once K] FILE...`
//! (library: AGENTD_PDFIUM_PATH, default ./data/lib/libpdfium.so).
//! `--print` writes the text instead. `--dpi 0` skips rendering. With R
//! readers (default 1), each round reads the file K times at once (default
//! R; a long file is split between the readers), and
//! pages are rendered in batches of 10, all asked for at once, as Document
//! Insights does. The readers are this program re-executed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use agentd_documents::{
    pdf_text, run_reader, PageBatch, PdfBytes, PdfReader, PdfSettings, ReaderCommand, RenderPages,
};

/// Pages a render request asks for (Document Insights' default batch).
const RENDER_BATCH: u32 = 10;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // Started by the pool as a reader: `pdf-bench --library PATH`.
    if args.len() == 2 && args[0] == "--library" {
        return run_reader(&PathBuf::from(&args[1]));
    }
    let print = take_flag(&mut args, "--print");
    let number = |args: &mut Vec<String>, flag: &str, default: u32| -> u32 {
        take_value(args, flag)
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{flag} takes a number"))
            })
            .unwrap_or(default)
    };
    let rounds = number(&mut args, "--rounds", 5).max(1) as usize;
    let dpi = number(&mut args, "--dpi", 100) as u16;
    let readers = number(&mut args, "--readers", 1).max(1) as usize;
    let at_once = number(&mut args, "--at-once", readers as u32).max(1) as usize;
    let library = std::env::var_os("AGENTD_PDFIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data/lib/libpdfium.so"));
    // Its path rather than /proc/self/exe, which under valgrind (callgrind
    // counts instructions whatever the load) names valgrind itself.
    let command = ReaderCommand {
        program: std::env::current_exe().expect("this program's path"),
        args: Vec::new(),
    };
    let reader = PdfReader::new(PdfSettings {
        max_pages: u32::MAX,
        readers,
        ..PdfSettings::new(library, command)
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
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
            let pages = text_layer(&reader, path, &bytes, rounds, at_once).await;
            if dpi > 0 {
                render(&reader, path, bytes, pages, dpi).await;
            }
        }
    });
    // Not dropped (which kills the readers): they see their input end when
    // this process exits and stop on their own, so that under callgrind
    // they write their counts.
    std::mem::forget(reader);
    std::mem::forget(runtime);
    ExitCode::SUCCESS
}

/// Reads the file `at_once` times at once, `rounds` times (a long file is
/// split between the readers, so one copy at a time with 2 readers uses
/// both). Wall time: the
/// best round, as the figures in NOTES.md were taken. CPU time (which a
/// busy machine inflates far less): this process and its readers over all
/// rounds together, since the clock ticks only every 10 ms.
async fn text_layer(
    reader: &PdfReader,
    path: &str,
    bytes: &[u8],
    rounds: usize,
    at_once: usize,
) -> u32 {
    let read_all_at_once = || async {
        let reads = (0..at_once).map(|_| {
            let (reader, bytes) = (reader.clone(), bytes.to_vec());
            async move { reader.extract(bytes).await }
        });
        let results = all_at_once(reads).await;
        results
            .into_iter()
            .map(|pages| pages.unwrap_or_else(|e| panic!("{path}: {e}")).len() as u32)
            .sum::<u32>()
    };
    // Not timed: starts the readers.
    let pages = read_all_at_once().await / at_once as u32;
    let pids: Vec<u32> = reader.readers().iter().map(|r| r.pid).collect();
    let cpu_before = cpu_seconds(&pids);
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let started = Instant::now();
        read_all_at_once().await;
        best = best.min(started.elapsed().as_secs_f64());
    }
    let cpu = match (cpu_before, cpu_seconds(&pids)) {
        (Some(before), Some(after)) if after.total() > before.total() => {
            let per_round = (after.total() - before.total()) / rounds as f64;
            let in_server = (after.own - before.own) / rounds as f64;
            let read = f64::from(pages) * at_once as f64;
            format!(
                ", CPU {:.1} ms a round ({:.0} % in this process), {:.0} pages per CPU-second",
                per_round * 1000.0,
                100.0 * in_server / per_round,
                read / per_round
            )
        }
        _ => String::new(),
    };
    println!(
        "{path}: {pages} pages, {} reader(s), {at_once} at once, best of {rounds}: wall {:.1} ms, {:.0} pages/s{cpu}",
        reader.readers().len(),
        best * 1000.0,
        f64::from(pages) * at_once as f64 / best
    );
    pages
}

/// Renders every page once (text layer, character boxes and a PNG each),
/// in batches of `RENDER_BATCH` pages asked for at once, as Document
/// Insights does.
async fn render(reader: &PdfReader, path: &str, bytes: Vec<u8>, pages: u32, dpi: u16) {
    // Hashed once for all its batches, as Document Insights does.
    let bytes = PdfBytes::from(bytes);
    let started = Instant::now();
    let batches = (1..=pages).step_by(RENDER_BATCH as usize).map(|first| {
        let range = PageBatch {
            first,
            count: RENDER_BATCH,
            render: RenderPages::All,
            dpi,
        };
        let (reader, bytes) = (reader.clone(), bytes.clone());
        async move { reader.pages(bytes, range).await }
    });
    let rendered: Vec<_> = all_at_once(batches)
        .await
        .into_iter()
        .flat_map(|batch| batch.unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect();
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

/// Runs the requests as tasks, all in flight at once; answers in order.
async fn all_at_once<F>(requests: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = requests.map(tokio::spawn).collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.expect("a request task"));
    }
    answers
}

struct Cpu {
    own: f64,
    readers: f64,
}

impl Cpu {
    fn total(&self) -> f64 {
        self.own + self.readers
    }
}

/// User + system CPU time of this process and of `readers`.
fn cpu_seconds(readers: &[u32]) -> Option<Cpu> {
    let own = process_cpu_seconds("self")?;
    let mut of_readers = 0.0;
    for pid in readers {
        of_readers += process_cpu_seconds(&pid.to_string())?;
    }
    Some(Cpu {
        own,
        readers: of_readers,
    })
}

/// Linux `/proc/PID/stat`, in clock ticks of 1/100 s.
fn process_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
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
