//! What the agent does in a page, as blocking DevTools calls on the tab's own connection with
//! headless_chrome's typed protocol. Every call is bounded on Chrome's side too
//! (Runtime.evaluate's `timeout`), and waits poll the document rather than waiting for the
//! network to go idle.

use std::time::{Duration, Instant};

use base64::Engine;
use headless_chrome::protocol::cdp::{Emulation, Input, Page, Runtime};
use serde_json::Value;

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
    page.send(
        Emulation::SetDeviceMetricsOverride {
            width,
            height,
            device_scale_factor: 1.0,
            mobile: false,
            scale: None,
            screen_width: None,
            screen_height: None,
            position_x: None,
            position_y: None,
            dont_set_visible_size: None,
            screen_orientation: None,
            viewport: None,
            display_feature: None,
            device_posture: None,
        },
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
    let started = Instant::now();
    let reply = page.send(
        Runtime::Evaluate {
            expression: expression.to_owned(),
            object_group: None,
            include_command_line_api: Some(false),
            silent: Some(true),
            context_id: None,
            return_by_value: Some(true),
            generate_preview: Some(false),
            user_gesture: Some(false),
            await_promise: Some(true),
            throw_on_side_effect: None,
            timeout: Some(timeout.as_millis() as f64),
            disable_breaks: None,
            repl_mode: None,
            allow_unsafe_eval_blocked_by_csp: None,
            unique_context_id: None,
            serialization_options: None,
        },
        timeout + GRACE,
    );
    let reply = match reply {
        // Chrome stops a script at `timeout` and answers a bare "Internal error".
        Err(CdpError::Remote(_)) if started.elapsed() >= timeout => return Err(PageError::Timeout),
        other => other?,
    };
    if let Some(details) = reply.exception_details {
        let description = details
            .exception
            .and_then(|e| e.description)
            .unwrap_or(details.text);
        if description.contains("Execution was terminated") {
            return Err(PageError::Timeout);
        }
        return Err(PageError::Script(description.chars().take(500).collect()));
    }
    Ok(reply.result.value.unwrap_or(Value::Null))
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
    let mark = format!("window.__mcpNav = '{marker}'");
    if let Err(PageError::Timeout) = evaluate(page, &mark, Duration::from_secs(1)) {
        // A script that never yields (an endless loop) holds the renderer, and a navigation
        // would wait behind it: stop it first (DevTools interrupts it), then go.
        let _ = page.send(Runtime::TerminateExecution(None), Duration::from_secs(2));
        let _ = evaluate(page, &mark, Duration::from_secs(1));
    }
    let request = Page::Navigate {
        url: url.to_owned(),
        referrer: None,
        transition_Type: None,
        frame_id: None,
        referrer_policy: None,
    };
    let reply = match page.send(request, timeout) {
        Err(CdpError::Timeout) => {
            let _ = page.send(Page::StopLoading(None), Duration::from_secs(2));
            return Err(PageError::Timeout);
        }
        other => other?,
    };
    if let Some(error) = reply.error_text {
        return Err(PageError::Navigation(error));
    }
    let same_document = reply.loader_id.is_none();
    let probe = format!(
        "({{ready: document.readyState, fresh: window.__mcpNav !== '{marker}', url: location.href, title: document.title,
           status: (performance.getEntriesByType('navigation')[0] || {{}}).responseStatus || null}})"
    );
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = page.send(Page::StopLoading(None), Duration::from_secs(2));
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
    let metrics = page.send(Page::GetLayoutMetrics(None), timeout)?;
    let viewport = &metrics.css_layout_viewport;
    let (x, y, width, height) = if full_page {
        (
            0.0,
            0.0,
            metrics.css_content_size.width,
            metrics.css_content_size.height,
        )
    } else {
        (
            f64::from(viewport.page_x),
            f64::from(viewport.page_y),
            f64::from(viewport.client_width),
            f64::from(viewport.client_height),
        )
    };
    let (width, height) = (width.max(1.0), height.max(1.0));
    let scale = fit_scale(width, height, limits);
    let format = if jpeg {
        Page::CaptureScreenshotFormatOption::Jpeg
    } else {
        Page::CaptureScreenshotFormatOption::Png
    };
    let reply = page.send(
        Page::CaptureScreenshot {
            format: Some(format),
            quality: jpeg.then_some(80),
            clip: Some(Page::Viewport {
                x,
                y,
                width,
                height,
                scale,
            }),
            from_surface: Some(true),
            capture_beyond_viewport: Some(full_page),
            optimize_for_speed: Some(true),
        },
        timeout,
    )?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(reply.data)
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

fn mouse(kind: Input::DispatchMouseEventTypeOption, x: f64, y: f64) -> Input::DispatchMouseEvent {
    Input::DispatchMouseEvent {
        Type: kind,
        x,
        y,
        modifiers: None,
        timestamp: None,
        button: Some(Input::MouseButton::Left),
        buttons: None,
        click_count: Some(1),
        force: None,
        tangential_pressure: None,
        tilt_x: None,
        tilt_y: None,
        twist: None,
        delta_x: None,
        delta_y: None,
        pointer_Type: None,
    }
}

fn enter_key(
    kind: Input::DispatchKeyEventTypeOption,
    text: Option<&str>,
) -> Input::DispatchKeyEvent {
    Input::DispatchKeyEvent {
        Type: kind,
        modifiers: None,
        timestamp: None,
        text: text.map(str::to_owned),
        unmodified_text: text.map(str::to_owned),
        key_identifier: None,
        code: Some("Enter".into()),
        key: Some("Enter".into()),
        windows_virtual_key_code: Some(13),
        native_virtual_key_code: Some(13),
        auto_repeat: None,
        is_keypad: None,
        is_system_key: None,
        location: None,
        commands: None,
    }
}

/// Clicks the first element matching `selector`: scrolled into view, then real mouse events at
/// its centre (input into a background tab hangs, so the tab comes to the front first).
pub fn click(page: &mut CdpConnection, selector: &str, timeout: Duration) -> Result<(), PageError> {
    page.send(Page::BringToFront(None), timeout)?;
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
    use Input::DispatchMouseEventTypeOption::{MouseMoved, MousePressed, MouseReleased};
    for kind in [MouseMoved, MousePressed, MouseReleased] {
        page.send(mouse(kind, x, y), timeout)?;
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
    page.send(Page::BringToFront(None), timeout)?;
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
    page.send(
        Input::InsertText {
            text: text.to_owned(),
        },
        timeout,
    )?;
    if submit {
        page.send(
            enter_key(Input::DispatchKeyEventTypeOption::KeyDown, Some("\r")),
            timeout,
        )?;
        page.send(
            enter_key(Input::DispatchKeyEventTypeOption::KeyUp, None),
            timeout,
        )?;
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
    // Cut inside the page: a page's text may be larger than one DevTools message can carry
    // (16 MiB). Lengths count code points, as the result's do.
    let value = evaluate(
        page,
        &format!(
            "(() => {{ const text = {body}; const max = {max_chars};
               const pairs = (text.match(/[\\uD800-\\uDBFF][\\uDC00-\\uDFFF]/g) || []).length;
               const total = text.length - pairs;
               const content = total > max ? Array.from(text.slice(0, 2 * max)).slice(0, max).join('') : text;
               return {{content, total, url: location.href}}; }})()"
        ),
        timeout,
    )?;
    let content = value["content"].as_str().unwrap_or_default().to_owned();
    let total_chars = value["total"]
        .as_u64()
        .map_or_else(|| content.chars().count(), |n| n as usize);
    let truncated = total_chars > max_chars;
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
        let s = fit_scale(1920.0, 1080.0, limits);
        assert!(1920.0 * 1080.0 * s * s <= 1_150_000.0 + 1.0);
        let s = fit_scale(1280.0, 20_000.0, limits);
        assert!(20_000.0 * s <= 1568.0 + 0.01);
    }
}
