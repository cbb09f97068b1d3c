//! Interactive Web's primitives: the page's interactive elements, and
//! actions on them performed as a user would (mouse clicks and key presses
//! through CDP input events), each waiting for a navigation it caused.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::page::Page;
use super::{InteractiveElement, PageAction};
use crate::WebError;

/// How long after an action a navigation may start and still be awaited.
const NAVIGATION_GRACE: Duration = Duration::from_millis(500);

/// Numbers the visible interactive elements (`data-agentd-index`) and
/// describes them; at most `MAX_ELEMENTS`, the first in page order.
const LIST_ELEMENTS: &str = r#"(() => {
  const MAX_ELEMENTS = 500;
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, [role=button], [role=link], [contenteditable=""], [contenteditable=true]';
  const clean = text => (text || '').replace(/\s+/g, ' ').trim().slice(0, 200);
  const visible = el => {
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return box.width > 0 && box.height > 0 && style.visibility !== 'hidden' && style.display !== 'none';
  };
  // A wrapping label's own words, without the texts of the controls in it.
  const wrapperText = el => {
    const label = el.closest('label');
    if (!label) return '';
    const copy = label.cloneNode(true);
    copy.querySelectorAll('select, input, textarea, button').forEach(control => control.remove());
    return copy.textContent;
  };
  const labelOf = el => {
    const tag = el.tagName.toLowerCase();
    const forLabel = el.id ? document.querySelector(`label[for="${CSS.escape(el.id)}"]`) : null;
    const ownText = ['select', 'textarea', 'input'].includes(tag) ? '' : el.innerText;
    const buttonValue = tag === 'input' && ['submit', 'button', 'reset'].includes(el.type) ? el.value : '';
    return clean(el.getAttribute('aria-label')) || clean(forLabel && forLabel.innerText)
      || clean(ownText) || clean(buttonValue) || clean(el.getAttribute('placeholder'))
      || clean(el.getAttribute('title')) || clean(el.getAttribute('alt'))
      || clean(wrapperText(el)) || clean(el.getAttribute('name'));
  };
  document.querySelectorAll('[data-agentd-index]').forEach(el => el.removeAttribute('data-agentd-index'));
  const found = [];
  for (const el of document.querySelectorAll(selector)) {
    if (found.length >= MAX_ELEMENTS) break;
    if (el.disabled || !visible(el)) continue;
    const index = found.length;
    el.setAttribute('data-agentd-index', String(index));
    const tag = el.tagName.toLowerCase();
    const kind = tag === 'input' ? `input[type=${(el.getAttribute('type') || 'text').toLowerCase()}]` : tag;
    const options = tag === 'select' ? Array.from(el.options).map(option => clean(option.text)) : [];
    found.push({ index, kind, label: labelOf(el), options });
  }
  return found;
})()"#;

#[derive(Deserialize)]
struct ListedElement {
    index: usize,
    kind: String,
    label: String,
    options: Vec<String>,
}

pub(crate) async fn elements(page: &Page) -> Result<Vec<InteractiveElement>, WebError> {
    let listed: Vec<ListedElement> = serde_json::from_value(page.evaluate(LIST_ELEMENTS).await?)
        .map_err(|error| {
            tracing::warn!(%error, "element list unreadable");
            WebError::Internal("the browser failed while reading the page".into())
        })?;
    Ok(listed
        .into_iter()
        .map(|element| InteractiveElement {
            index: element.index,
            kind: element.kind,
            label: element.label,
            options: element.options,
        })
        .collect())
}

pub(crate) async fn act(page: &Page, action: &PageAction) -> Result<(), WebError> {
    let mut events = page.events();
    match action {
        PageAction::Click { index } => click(page, *index).await?,
        PageAction::Type {
            index,
            text,
            submit,
        } => type_text(page, *index, text, *submit).await?,
        PageAction::Select { index, option } => select(page, *index, option).await?,
        PageAction::Scroll { down } => {
            let direction = if *down { 1 } else { -1 };
            page.evaluate(&format!(
                "window.scrollBy(0, {direction} * 0.8 * innerHeight)"
            ))
            .await?;
        }
        PageAction::Wait { duration } => tokio::time::sleep(*duration).await,
    }
    settle(page, &mut events).await
}

/// If the action started a navigation of the page, waits for its load event.
async fn settle(
    page: &Page,
    events: &mut tokio::sync::broadcast::Receiver<super::cdp::Event>,
) -> Result<(), WebError> {
    let started = tokio::time::timeout(NAVIGATION_GRACE, async {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            let main_frame = event.params["frameId"].as_str() == Some(&page.target_id)
                || event.params["frame"]["id"].as_str() == Some(&page.target_id);
            let navigating = matches!(
                event.method.as_str(),
                "Page.frameRequestedNavigation"
                    | "Page.frameStartedNavigating"
                    | "Page.frameStartedLoading"
                    | "Page.frameNavigated"
            );
            if main_frame && navigating {
                return;
            }
        }
    })
    .await
    .is_ok();
    if started {
        page.wait_for(events, &["Page.loadEventFired"]).await?;
    }
    Ok(())
}

/// Scrolls element `index` into view and returns its centre, or says it is gone.
async fn locate(page: &Page, index: usize) -> Result<(f64, f64), WebError> {
    let centre = page
        .evaluate(&format!(
            r#"(() => {{
  const el = document.querySelector('[data-agentd-index="{index}"]');
  if (!el) return null;
  el.scrollIntoView({{ block: 'center', inline: 'center' }});
  const box = el.getBoundingClientRect();
  return {{ x: box.left + box.width / 2, y: box.top + box.height / 2 }};
}})()"#
        ))
        .await?;
    match (centre["x"].as_f64(), centre["y"].as_f64()) {
        (Some(x), Some(y)) => Ok((x, y)),
        _ => Err(no_such_element(index)),
    }
}

fn no_such_element(index: usize) -> WebError {
    WebError::Unreachable(format!(
        "element {index} is not on the page (list the elements again)"
    ))
}

async fn click(page: &Page, index: usize) -> Result<(), WebError> {
    let (x, y) = locate(page, index).await?;
    for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
        page.call(
            "Input.dispatchMouseEvent",
            json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
        )
        .await?;
    }
    Ok(())
}

async fn type_text(page: &Page, index: usize, text: &str, submit: bool) -> Result<(), WebError> {
    let focused = page
        .evaluate(&format!(
            r#"(() => {{
  const el = document.querySelector('[data-agentd-index="{index}"]');
  if (!el) return false;
  el.scrollIntoView({{ block: 'center' }});
  el.focus();
  if (typeof el.select === 'function') el.select();
  return true;
}})()"#
        ))
        .await?;
    if focused != Value::Bool(true) {
        return Err(no_such_element(index));
    }
    page.call("Input.insertText", json!({ "text": text }))
        .await?;
    if submit {
        let enter = json!({ "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13 });
        let mut down = enter.clone();
        down["type"] = json!("keyDown");
        down["text"] = json!("\r");
        let mut up = enter;
        up["type"] = json!("keyUp");
        page.call("Input.dispatchKeyEvent", down).await?;
        page.call("Input.dispatchKeyEvent", up).await?;
    }
    Ok(())
}

async fn select(page: &Page, index: usize, option: &str) -> Result<(), WebError> {
    let wanted = serde_json::to_string(option).unwrap_or_default();
    let outcome = page
        .evaluate(&format!(
            r#"(() => {{
  const el = document.querySelector('[data-agentd-index="{index}"]');
  if (!el || el.tagName !== 'SELECT') return 'missing';
  const wanted = {wanted}.trim().toLowerCase();
  const option = Array.from(el.options).find(o => o.text.trim().toLowerCase() === wanted || o.value.toLowerCase() === wanted);
  if (!option) return 'no-option';
  el.value = option.value;
  el.dispatchEvent(new Event('input', {{ bubbles: true }}));
  el.dispatchEvent(new Event('change', {{ bubbles: true }}));
  return 'ok';
}})()"#
        ))
        .await?;
    match outcome.as_str() {
        Some("ok") => Ok(()),
        Some("no-option") => Err(WebError::Unreachable(format!(
            "element {index} has no option '{option}'"
        ))),
        _ => Err(no_such_element(index)),
    }
}
