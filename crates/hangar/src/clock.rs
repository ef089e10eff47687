//! `hangar clock show|advance`: the server's development clock
//! (`GET /_hangar/clock`, `POST /_hangar/clock/advance?by=…`).

use anyhow::{Context, anyhow, bail};
use http::{Method, StatusCode};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::{self, Answer, Http};

/// The server's answer to both routes.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockState {
    pub offset_seconds: i64,
    pub now: String,
}

impl ClockState {
    fn from_answer(answer: &Answer) -> anyhow::Result<Self> {
        let value: serde_json::Value = serde_json::from_slice(&answer.body)
            .with_context(|| format!("unreadable clock answer: {}", answer.text()))?;
        let offset_seconds = value
            .get("offset_seconds")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| anyhow!("clock answer without offset_seconds: {value}"))?;
        let now = value
            .get("now")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| anyhow!("clock answer without now: {value}"))?
            .to_string();
        Ok(Self {
            offset_seconds,
            now,
        })
    }

    /// What the commands print: two `key: value` lines.
    pub fn render(&self) -> String {
        format!("now: {}\noffset_seconds: {}", self.now, self.offset_seconds)
    }
}

/// The message of a refusal: the `message` (or `error`) field of a JSON
/// body, else the body's text.
fn refusal(answer: &Answer) -> anyhow::Error {
    let text = answer.text();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|value| {
            ["message", "error", "Message"]
                .iter()
                .find_map(|key| value.get(key).and_then(|v| v.as_str()).map(String::from))
        })
        .unwrap_or(text);
    anyhow!("the server refused (HTTP {}): {message}", answer.status)
}

pub async fn show(http: &Http) -> anyhow::Result<ClockState> {
    let answer = http
        .send(client::plain(Method::GET, "/_hangar/clock")?)
        .await?;
    if answer.status != StatusCode::OK {
        return Err(refusal(&answer));
    }
    ClockState::from_answer(&answer)
}

pub async fn advance(http: &Http, by: &str) -> anyhow::Result<ClockState> {
    if by.is_empty() {
        bail!("the duration to advance by is empty (examples: 90d, 25h, 1h30m)");
    }
    let path = format!(
        "/_hangar/clock/advance?by={}",
        hangar_auth::uri_encode(by.as_bytes())
    );
    let answer = http.send(client::plain(Method::POST, &path)?).await?;
    if answer.status != StatusCode::OK {
        return Err(refusal(&answer));
    }
    ClockState::from_answer(&answer)
}

/// The service's "now" for reports: `GET /_hangar/clock`'s `now` when the
/// endpoint answers it (a Hangar whose dev clock may have been advanced),
/// else `None` (the caller uses its own clock).
pub async fn service_now(http: &Http) -> Option<OffsetDateTime> {
    let state = show(http).await.ok()?;
    parse_now(&state.now)
}

/// Reads the server's `now`. A whole-second value stands for that whole
/// second: it is taken as its last millisecond, so that an image created
/// a moment ago (millisecond `CreationDate`) is not "after now".
fn parse_now(now: &str) -> Option<OffsetDateTime> {
    let parsed = OffsetDateTime::parse(now, &Rfc3339).ok()?;
    Some(if parsed.nanosecond() == 0 {
        parsed + time::Duration::milliseconds(999)
    } else {
        parsed
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn whole_second_nows_end_their_second() {
        use time::macros::datetime;
        assert_eq!(
            parse_now("2027-03-01T00:00:05Z"),
            Some(datetime!(2027-03-01 00:00:05.999 UTC))
        );
        assert_eq!(
            parse_now("2027-03-01T00:00:05.250Z"),
            Some(datetime!(2027-03-01 00:00:05.250 UTC))
        );
        assert_eq!(parse_now("soon"), None);
    }

    #[test]
    fn answers_and_refusals_read() {
        let state = ClockState::from_answer(&answer(
            200,
            r#"{"offset_seconds": 7776000, "now": "2027-03-01T00:00:00.000Z"}"#,
        ))
        .unwrap();
        assert_eq!(state.offset_seconds, 7_776_000);
        assert_eq!(
            state.render(),
            "now: 2027-03-01T00:00:00.000Z\noffset_seconds: 7776000"
        );
        assert!(ClockState::from_answer(&answer(200, "{}")).is_err());
        let error = refusal(&answer(403, r#"{"message": "dev_clock is off"}"#)).to_string();
        assert_eq!(
            error,
            "the server refused (HTTP 403 Forbidden): dev_clock is off"
        );
        let error = refusal(&answer(400, "bad duration\n")).to_string();
        assert_eq!(
            error,
            "the server refused (HTTP 400 Bad Request): bad duration"
        );
    }
}
