//! The server's side of the PDF readers: a small pool of reader processes
//! ([`crate::reader`]), started when the first PDF arrives.
//!
//! A request takes a free reader (one that has its document already, if
//! any), or starts one while fewer than the pool's size run; otherwise it
//! waits. It then owns that reader's pipes until the answer is in. A request
//! runs as its own task, so that a caller that gives up (a cancelled job)
//! does not leave a reader with half a conversation.
//!
//! A reader that dies while serving (a crash inside PDFium, a kill from
//! outside, the kernel's OOM killer) fails only that request, which is
//! tried once more on another reader: a death that is not the document's
//! fault costs a retry. If the document kills that reader too, it is blamed
//! ([`DocumentError::ReaderCrashed`]). A reader that takes longer than the
//! deadline is killed and its request fails ([`DocumentError::ReadTimedOut`]).
//! Dead readers are replaced lazily, by the next request.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::BufReader;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::protocol::{self, Answer, DocumentHash, DocumentRef, Hello, Reply, Request, Work};
use crate::DocumentError;

/// How to start a reader process; the pool adds `--library PATH`.
#[derive(Clone, Debug)]
pub struct ReaderCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl ReaderCommand {
    /// This very executable with `args` (`agentd pdf-reader`), so that a
    /// deployment ships one binary. `/proc/self/exe` still names it after
    /// the file on disk was replaced by an upgrade.
    pub fn this_program(args: &[&str]) -> std::io::Result<Self> {
        let proc_self = PathBuf::from("/proc/self/exe");
        let program = if proc_self.exists() {
            proc_self
        } else {
            std::env::current_exe()?
        };
        Ok(Self {
            program,
            args: args.iter().map(OsString::from).collect(),
        })
    }
}

/// A reader process of the pool, as seen from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderInfo {
    pub pid: u32,
    /// Serving a request now.
    pub busy: bool,
}

pub(crate) struct Pool {
    command: ReaderCommand,
    library: PathBuf,
    timeout: Duration,
    /// One permit per reader the pool may run.
    slots: Semaphore,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    idle: Vec<Reader>,
    busy: BTreeSet<u32>,
}

/// Documents a reader is believed to keep (it keeps this many, and says
/// when it has forgotten one).
const REMEMBERED_DOCUMENTS: usize = 4;
/// A reply buffer larger than this is not kept for the next reply.
const KEPT_FRAME_BYTES: usize = 1 << 20;

/// glibc malloc settings of a reader, unless the environment sets them: a
/// reader frees everything a request allocated when it answers, and by
/// default glibc gives that memory back to the kernel (and maps every
/// large buffer afresh), so the next request faults it in again. Keeping
/// up to 32 MiB of freed heap, and allocating buffers under 16 MiB (a
/// page rendered at 100 DPI is 4 MiB) from the heap, made text-layer
/// reading 4–12 % cheaper per CPU-second (README "Benchmarks").
const READER_MALLOC: [(&str, &str); 2] = [
    ("MALLOC_TRIM_THRESHOLD_", "33554432"),
    ("MALLOC_MMAP_THRESHOLD_", "16777216"),
];

struct Reader {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Documents sent to this reader, most recent last.
    sent: VecDeque<DocumentHash>,
    frame: Vec<u8>,
}

/// Why a reader gave no answer.
enum Trouble {
    /// Its pipes broke or carried garbage: it died or went wrong.
    Died(std::io::Error),
    TimedOut,
}

impl Pool {
    pub(crate) fn new(
        command: ReaderCommand,
        library: PathBuf,
        readers: usize,
        timeout: Duration,
    ) -> Self {
        Self {
            command,
            library,
            timeout,
            slots: Semaphore::new(readers.max(1)),
            state: Mutex::default(),
        }
    }

    pub(crate) fn readers(&self) -> Vec<ReaderInfo> {
        let state = self.state();
        let idle = state.idle.iter().map(|reader| ReaderInfo {
            pid: reader.pid,
            busy: false,
        });
        let busy = state.busy.iter().map(|&pid| ReaderInfo { pid, busy: true });
        idle.chain(busy).collect()
    }

    /// `work` done on the document by a reader of the pool.
    pub(crate) async fn ask(
        self: &Arc<Self>,
        bytes: Arc<[u8]>,
        hash: DocumentHash,
        max_pages: u32,
        work: Work,
    ) -> Result<Answer, DocumentError> {
        let pool = Arc::clone(self);
        let request = async move { pool.serve(&bytes, hash, max_pages, work).await };
        tokio::spawn(request.instrument(tracing::Span::current()))
            .await
            .unwrap_or_else(|error| {
                tracing::error!(%error, "a PDF request failed");
                Err(DocumentError::Failed("the PDF reader failed".into()))
            })
    }

    async fn serve(
        &self,
        bytes: &[u8],
        hash: DocumentHash,
        max_pages: u32,
        work: Work,
    ) -> Result<Answer, DocumentError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| DocumentError::Failed("the PDF readers have stopped".into()))?;
        let mut deaths = 0;
        loop {
            let mut reader = self.take_reader(&hash).await?;
            tracing::debug!(pid = reader.pid, ?work, "a PDF request sent to a reader");
            let exchange = reader.exchange(&hash, bytes, max_pages, &work);
            let trouble = match tokio::time::timeout(self.timeout, exchange).await {
                Ok(Ok(answer)) => {
                    tracing::debug!(pid = reader.pid, "a PDF reader answered");
                    self.give_back(reader);
                    return answer;
                }
                Ok(Err(error)) => Trouble::Died(error),
                Err(_) => Trouble::TimedOut,
            };
            let pid = reader.pid;
            let status = self.discard(reader).await;
            match trouble {
                Trouble::TimedOut => {
                    let seconds = self.timeout.as_secs();
                    tracing::warn!(pid, seconds, "a PDF reader took too long on a document (AGENTD_PDF_TIMEOUT_SECS); it was killed");
                    return Err(DocumentError::ReadTimedOut(seconds));
                }
                Trouble::Died(error) => {
                    deaths += 1;
                    let how = describe(status);
                    if deaths > 1 {
                        tracing::error!(pid, %how, %error, "a PDF reader died on a document again; the document is blamed");
                        return Err(DocumentError::ReaderCrashed);
                    }
                    tracing::warn!(pid, %how, %error, "a PDF reader died while serving a request; retrying it on another reader");
                }
            }
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A free reader that is still alive, preferably one that has the
    /// document; a new one when none is free. The caller holds a slot.
    async fn take_reader(&self, hash: &DocumentHash) -> Result<Reader, DocumentError> {
        loop {
            let free = {
                let mut state = self.state();
                let with_document = state
                    .idle
                    .iter()
                    .position(|reader| reader.sent.contains(hash));
                let taken = match with_document {
                    Some(at) => Some(state.idle.swap_remove(at)),
                    None => state.idle.pop(),
                };
                if let Some(reader) = &taken {
                    state.busy.insert(reader.pid);
                }
                taken
            };
            let Some(mut reader) = free else {
                return self.start_reader().await;
            };
            match reader.child.try_wait() {
                Ok(None) => return Ok(reader),
                // Killed from outside while it waited: not any request's fault.
                exited => {
                    let how = describe(exited.ok().flatten());
                    tracing::warn!(pid = reader.pid, %how, "a free PDF reader had exited; starting another");
                    self.discard(reader).await;
                }
            }
        }
    }

    async fn start_reader(&self) -> Result<Reader, DocumentError> {
        if !self.library.is_file() {
            return Err(DocumentError::PdfLibraryMissing(self.library.clone()));
        }
        let mut command = Command::new(&self.command.program);
        command
            .args(&self.command.args)
            .arg("--library")
            .arg(&self.library)
            .env(crate::reader::PARENT_VAR, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (variable, value) in READER_MALLOC {
            if std::env::var_os(variable).is_none() {
                command.env(variable, value);
            }
        }
        let spawned = command.spawn().and_then(|mut child| {
            let pipes = child.stdin.take().zip(child.stdout.take());
            let (stdin, stdout) = pipes.ok_or_else(|| std::io::Error::other("no pipes"))?;
            Ok(Reader {
                pid: child.id().unwrap_or_default(),
                child,
                stdin,
                stdout: BufReader::with_capacity(1 << 16, stdout),
                sent: VecDeque::new(),
                frame: Vec::new(),
            })
        });
        let mut reader = spawned.map_err(|error| {
            tracing::error!(program = %self.command.program.display(), %error, "a PDF reader could not be started");
            DocumentError::Failed("the PDF reader could not be started".into())
        })?;
        self.state().busy.insert(reader.pid);
        let hello = tokio::time::timeout(self.timeout, reader.read::<Hello>()).await;
        let why = match hello {
            Ok(Ok(Hello::Ready)) => return Ok(reader),
            Ok(Ok(Hello::Unusable(why))) => why,
            Ok(Err(error)) => format!("it ended as it started ({error})"),
            Err(_) => "it did not start in time (AGENTD_PDF_TIMEOUT_SECS)".into(),
        };
        let how = describe(self.discard(reader).await);
        tracing::error!(library = %self.library.display(), %why, %how, "a PDF reader could not load PDFium");
        Err(DocumentError::PdfLibraryUnusable(self.library.clone()))
    }

    fn give_back(&self, mut reader: Reader) {
        if reader.frame.capacity() > KEPT_FRAME_BYTES {
            reader.frame = Vec::new();
        }
        let mut state = self.state();
        state.busy.remove(&reader.pid);
        state.idle.push(reader);
    }

    /// Kills the reader (if it still runs) and reaps it; how it ended.
    async fn discard(&self, mut reader: Reader) -> Option<ExitStatus> {
        let _ = reader.child.start_kill();
        let status = reader.child.wait().await.ok();
        self.state().busy.remove(&reader.pid);
        status
    }
}

impl Reader {
    /// One request answered; a reader that no longer has the document is
    /// sent it again.
    async fn exchange(
        &mut self,
        hash: &DocumentHash,
        bytes: &[u8],
        max_pages: u32,
        work: &Work,
    ) -> std::io::Result<Result<Answer, DocumentError>> {
        let mut reply = Reply::UnknownDocument;
        if self.sent.contains(hash) {
            let cached = DocumentRef::Cached(*hash);
            reply = self.call(cached, max_pages, work).await?;
            self.sent.retain(|sent| sent != hash);
        }
        if matches!(reply, Reply::UnknownDocument) {
            let sent = DocumentRef::Sent { hash: *hash, bytes };
            reply = self.call(sent, max_pages, work).await?;
        }
        self.sent.push_back(*hash);
        if self.sent.len() > REMEMBERED_DOCUMENTS {
            self.sent.pop_front();
        }
        match reply {
            Reply::Done(answer) => Ok(Ok(answer)),
            Reply::Failed(error) => Ok(Err(error.into())),
            Reply::UnknownDocument => Err(std::io::Error::other(
                "the reader lost a document as it was sent",
            )),
        }
    }

    async fn call(
        &mut self,
        document: DocumentRef<'_>,
        max_pages: u32,
        work: &Work,
    ) -> std::io::Result<Reply> {
        let request = Request {
            document,
            max_pages,
            work: work.clone(),
        };
        protocol::write_message_async(&mut self.stdin, &request).await?;
        self.read().await
    }

    async fn read<T: serde::de::DeserializeOwned>(&mut self) -> std::io::Result<T> {
        protocol::read_frame_async(&mut self.stdout, &mut self.frame).await?;
        protocol::decode(&self.frame)
    }
}

/// How a reader ended, for the log.
fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => match status.signal() {
            Some(signal) => format!("killed by signal {signal}"),
            None => format!("exited with {}", status.code().unwrap_or_default()),
        },
        None => "its end is unknown".into(),
    }
}
