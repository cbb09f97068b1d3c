//! Text of a rendered page by OCR: the `tesseract` command (Debian packages
//! `tesseract-ocr` and `tesseract-ocr-eng`), one subprocess per page, a few
//! at a time, each with a time limit.
//!
//! Only pages without a text layer come here: the text layer is faster and
//! keeps tables intact.

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::DocumentError;

/// Pages read by OCR at once, in the whole process (each takes a core).
const PAGES_AT_ONCE: usize = 2;
/// One page's OCR may take this long before it is given up.
const PAGE_TIME_LIMIT: Duration = Duration::from_secs(120);

fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(PAGES_AT_ONCE))
}

/// The text of a page image (PNG), in English.
pub async fn page_text(png: &[u8]) -> Result<String, DocumentError> {
    let _permit = permits()
        .acquire()
        .await
        .map_err(|_| DocumentError::Failed("the OCR queue has closed".into()))?;
    let mut child = Command::new(program())
        .args(["stdin", "stdout", "-l", "eng", "--psm", "3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => DocumentError::OcrMissing,
            _ => DocumentError::Failed(format!("OCR could not start: {error}")),
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| DocumentError::Failed("OCR has no input".into()))?;
    let image = png.to_vec();
    // Written on its own task: tesseract reads the whole image before it
    // writes, but a large image must not block waiting for the pipe.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&image).await;
    });
    let output = tokio::time::timeout(PAGE_TIME_LIMIT, child.wait_with_output())
        .await
        .map_err(|_| {
            DocumentError::Failed(format!(
                "OCR of a page took more than {} s",
                PAGE_TIME_LIMIT.as_secs()
            ))
        })?
        .map_err(|error| DocumentError::Failed(format!("OCR failed: {error}")))?;
    let _ = writer.await;
    if !output.status.success() {
        let reason = String::from_utf8_lossy(&output.stderr);
        tracing::warn!(%reason, "tesseract failed on a page");
        return Err(DocumentError::Failed(
            "OCR failed on a page (tesseract exited with an error)".into(),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `AGENTD_TESSERACT` (a path), or `tesseract` from the PATH.
fn program() -> String {
    std::env::var("AGENTD_TESSERACT")
        .ok()
        .filter(|path| !path.trim().is_empty())
        .unwrap_or_else(|| "tesseract".into())
}
