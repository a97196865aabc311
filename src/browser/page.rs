//! What the agent does in a page, as blocking DevTools calls on the tab's own connection. Every
//! call is bounded on Chrome's side too (Runtime.evaluate's `timeout`), and waits poll the
//! document rather than waiting for the network to go idle.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::cdp::{CdpConnection, CdpError};

/// Why a page operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("timed out")]
    Timeout,
    #[error("no element matches the selector")]
    NoElement,
    #[error("the navigation failed: {0}")]
    Navigation(String),
    #[error("the script threw: {0}")]
    Script(String),
    #[error("the browser did not answer: {0}")]
    Protocol(String),
}

impl From<CdpError> for PageError {
    fn from(e: CdpError) -> Self {
        match e {
            CdpError::Timeout => PageError::Timeout,
            other => PageError::Protocol(other.to_string()),
        }
    }
}

/// Extra time a DevTools call gets beyond the page-side timeout it carries.
const GRACE: Duration = Duration::from_secs(2);

/// Sizes the tab's viewport exactly.
pub fn set_viewport(
    page: &mut CdpConnection,
    width: u32,
    height: u32,
    timeout: Duration,
) -> Result<(), PageError> {
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        timeout,
    )?;
    Ok(())
}

/// Evaluates `expression` in the page and returns its JSON value. Chrome stops it after `timeout`.
pub fn evaluate(
    page: &mut CdpConnection,
    expression: &str,
    timeout: Duration,
) -> Result<Value, PageError> {
    let reply = page.call(
        "Runtime.evaluate",
        json!({"expression": expression, "returnByValue": true, "awaitPromise": true, "silent": true,
               "userGesture": false, "timeout": timeout.as_millis() as u64}),
        timeout + GRACE,
    )?;
    if let Some(details) = reply.get("exceptionDetails") {
        let description = details
            .pointer("/exception/description")
            .or_else(|| details.get("text"))
            .and_then(Value::as_str)
            .unwrap_or("exception");
        if description.contains("Execution was terminated") {
            return Err(PageError::Timeout);
        }
        return Err(PageError::Script(description.chars().take(500).collect()));
    }
    Ok(reply
        .pointer("/result/value")
        .cloned()
        .unwrap_or(Value::Null))
}

/// Where a navigation ended.
pub struct Navigated {
    pub url: String,
    pub title: String,
    pub status: Option<u16>,
}

/// Navigates and waits until the new document is complete (not until the network is idle).
pub fn navigate(
    page: &mut CdpConnection,
    url: &str,
    timeout: Duration,
) -> Result<Navigated, PageError> {
    let deadline = Instant::now() + timeout;
    // A marker in the old document tells it apart from the new one.
    let marker = format!("m{}", crate::clock::now_ms());
    let _ = evaluate(
        page,
        &format!("window.__mcpNav = '{marker}'"),
        Duration::from_secs(1),
    );
    let reply = match page.call("Page.navigate", json!({"url": url}), timeout) {
        Err(CdpError::Timeout) => {
            let _ = page.call("Page.stopLoading", json!({}), Duration::from_secs(2));
            return Err(PageError::Timeout);
        }
        other => other?,
    };
    if let Some(error) = reply.get("errorText").and_then(Value::as_str) {
        return Err(PageError::Navigation(error.to_owned()));
    }
    let same_document = reply.get("loaderId").is_none();
    let probe = format!(
        "({{ready: document.readyState, fresh: window.__mcpNav !== '{marker}', url: location.href, title: document.title,
           status: (performance.getEntriesByType('navigation')[0] || {{}}).responseStatus || null}})"
    );
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = page.call("Page.stopLoading", json!({}), Duration::from_secs(2));
            return Err(PageError::Timeout);
        }
        match evaluate(page, &probe, left.min(Duration::from_secs(5))) {
            Ok(state)
                if state["ready"] == "complete" && (same_document || state["fresh"] == true) =>
            {
                return Ok(Navigated {
                    url: state["url"].as_str().unwrap_or_default().to_owned(),
                    title: state["title"].as_str().unwrap_or_default().to_owned(),
                    status: state["status"].as_u64().and_then(|s| u16::try_from(s).ok()),
                });
            }
            // While the document is replaced the old context may vanish mid-call.
            Ok(_) | Err(PageError::Script(_)) | Err(PageError::Timeout) => {}
            Err(e) => return Err(e),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Screenshot limits: hosts refuse images larger than this.
#[derive(Debug, Clone, Copy)]
pub struct ShotLimits {
    pub max_side: f64,
    pub max_pixels: f64,
}

pub struct Shot {
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub scale: f64,
}

/// The scale that makes a `width`×`height` image fit `limits` (never enlarging).
pub fn fit_scale(width: f64, height: f64, limits: ShotLimits) -> f64 {
    1.0f64
        .min(limits.max_side / width.max(height))
        .min((limits.max_pixels / (width * height)).sqrt())
}

/// Captures the viewport (or the whole page), scaled down so that it fits `limits`.
pub fn screenshot(
    page: &mut CdpConnection,
    full_page: bool,
    jpeg: bool,
    limits: ShotLimits,
    timeout: Duration,
) -> Result<Shot, PageError> {
    let metrics = page.call("Page.getLayoutMetrics", json!({}), timeout)?;
    let number = |pointer: &str| {
        metrics
            .pointer(pointer)
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    let (x, y, width, height) = if full_page {
        (
            0.0,
            0.0,
            number("/cssContentSize/width"),
            number("/cssContentSize/height"),
        )
    } else {
        (
            number("/cssLayoutViewport/pageX"),
            number("/cssLayoutViewport/pageY"),
            number("/cssLayoutViewport/clientWidth"),
            number("/cssLayoutViewport/clientHeight"),
        )
    };
    let (width, height) = (width.max(1.0), height.max(1.0));
    let scale = fit_scale(width, height, limits);
    let mut params = json!({
        "format": if jpeg { "jpeg" } else { "png" },
        "clip": {"x": x, "y": y, "width": width, "height": height, "scale": scale},
        "fromSurface": true,
        "captureBeyondViewport": full_page,
        "optimizeForSpeed": true,
    });
    if jpeg {
        params["quality"] = json!(80);
    }
    let reply = page.call("Page.captureScreenshot", params, timeout)?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(
            reply
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )
        .map_err(|e| PageError::Protocol(e.to_string()))?;
    Ok(Shot {
        data,
        width: (width * scale).floor() as u32,
        height: (height * scale).floor() as u32,
        scale,
    })
}

/// A JavaScript string literal of `text`.
fn js_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// Clicks the first element matching `selector`: scrolled into view, then real mouse events at
/// its centre.
pub fn click(page: &mut CdpConnection, selector: &str, timeout: Duration) -> Result<(), PageError> {
    page.call("Page.bringToFront", json!({}), timeout)?;
    let point = evaluate(
        page,
        &format!(
            "(() => {{ const el = document.querySelector({}); if (!el) return null;
               el.scrollIntoView({{block: 'center', inline: 'center'}});
               const r = el.getBoundingClientRect();
               return r.width > 0 && r.height > 0 ? {{x: r.left + r.width / 2, y: r.top + r.height / 2}} : null; }})()",
            js_string(selector)
        ),
        timeout,
    )?;
    let (Some(x), Some(y)) = (point["x"].as_f64(), point["y"].as_f64()) else {
        return Err(PageError::NoElement);
    };
    for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
        page.call(
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            timeout,
        )?;
    }
    Ok(())
}

/// Focuses the element, inserts `text`, and presses Enter when `submit`.
pub fn type_text(
    page: &mut CdpConnection,
    selector: &str,
    text: &str,
    submit: bool,
    timeout: Duration,
) -> Result<(), PageError> {
    page.call("Page.bringToFront", json!({}), timeout)?;
    let focused = evaluate(
        page,
        &format!(
            "(() => {{ const el = document.querySelector({}); if (!el) return false; el.focus(); return true; }})()",
            js_string(selector)
        ),
        timeout,
    )?;
    if focused != Value::Bool(true) {
        return Err(PageError::NoElement);
    }
    page.call("Input.insertText", json!({"text": text}), timeout)?;
    if submit {
        let key = json!({"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13});
        let mut down = key.clone();
        down["type"] = json!("keyDown");
        down["text"] = json!("\r");
        let mut up = key;
        up["type"] = json!("keyUp");
        page.call("Input.dispatchKeyEvent", down, timeout)?;
        page.call("Input.dispatchKeyEvent", up, timeout)?;
    }
    Ok(())
}

/// Waits until an element matches `selector`; returns how long it took.
pub fn wait_for(
    page: &mut CdpConnection,
    selector: &str,
    timeout: Duration,
) -> Result<Duration, PageError> {
    let start = Instant::now();
    let probe = format!("document.querySelector({}) !== null", js_string(selector));
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(PageError::Timeout);
        }
        match evaluate(page, &probe, left.min(Duration::from_secs(5))) {
            Ok(Value::Bool(true)) => return Ok(start.elapsed()),
            Ok(_) | Err(PageError::Script(_)) => {}
            Err(e) => return Err(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What browser-read returns.
pub struct Reading {
    pub content: String,
    pub truncated: bool,
    pub total_chars: usize,
    pub url: String,
}

/// The page's text (`innerText`) or HTML, at most `max_chars` characters.
pub fn read(
    page: &mut CdpConnection,
    html: bool,
    max_chars: usize,
    timeout: Duration,
) -> Result<Reading, PageError> {
    let body = if html {
        "document.documentElement ? document.documentElement.outerHTML : ''"
    } else {
        "document.body ? document.body.innerText : ''"
    };
    let value = evaluate(
        page,
        &format!("({{content: {body}, url: location.href}})"),
        timeout,
    )?;
    let text = value["content"].as_str().unwrap_or_default();
    let total_chars = text.chars().count();
    let truncated = total_chars > max_chars;
    let content = if truncated {
        text.chars().take(max_chars).collect()
    } else {
        text.to_owned()
    };
    Ok(Reading {
        content,
        truncated,
        total_chars,
        url: value["url"].as_str().unwrap_or_default().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screenshots_fit_host_limits() {
        let limits = ShotLimits {
            max_side: 1568.0,
            max_pixels: 1_150_000.0,
        };
        assert_eq!(fit_scale(800.0, 600.0, limits), 1.0);
        let s = fit_scale(1280.0, 720.0, limits);
        assert!(1280.0 * 720.0 * s * s <= 1_150_000.0 + 1.0);
        let s = fit_scale(1280.0, 20_000.0, limits);
        assert!(20_000.0 * s <= 1568.0 + 0.01);
    }
}
