//! `hangar report unused`: the caller's images not launched for N days (or
//! never launched), with what still uses them and where they come from.
//!
//! Only the public EC2 API is used (DescribeImages, DescribeImageReferences
//! or DescribeInstances, GetImageAncestry), so the report runs against any
//! EC2-compatible endpoint. Decisions (also in docs/cli.md):
//!
//! * "now" is the service's clock: `GET /_hangar/clock`'s `now` when the
//!   endpoint answers it (a Hangar with an advanced dev clock), else the
//!   local clock;
//! * an image is unused when its `LastLaunchedTime` is at least N days
//!   before now, or when it has none (never launched, or the launch is not
//!   reported yet) and its `CreationDate` is at least N days before now;
//!   `--days 0` therefore lists every image;
//! * deregistered images are left out; disabled and deprecated ones are in.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use anyhow::Context;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::client::{Ec2, Node, ec2_error};

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// One image as DescribeImages shows it, with the fields the report needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    pub image_id: String,
    pub name: Option<String>,
    pub state: Option<String>,
    pub creation_date: Option<String>,
    pub last_launched_time: Option<String>,
    pub deprecation_time: Option<String>,
    pub deregistration_protection: Option<String>,
}

/// One line of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub image: Image,
    pub instances_using: u64,
    pub ancestry: Vec<String>,
}

/// The column names, in order: also the JSON keys and the CSV header.
pub const COLUMNS: [&str; 8] = [
    "ImageId",
    "Name",
    "CreationDate",
    "LastLaunchedTime",
    "DeprecationTime",
    "DeregistrationProtection",
    "InstancesUsing",
    "Ancestry",
];

/// The instance states that count as "still using" an image.
const LIVE_STATES: [&str; 5] = ["pending", "running", "shutting-down", "stopping", "stopped"];

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// True when `image` counts as unused at `now` for `days` (see the module
/// documentation). An image whose dates cannot be read is not listed.
pub fn is_unused(image: &Image, now: OffsetDateTime, days: u32) -> bool {
    // More days than the calendar holds: nothing is that old.
    let Some(cutoff) = now.checked_sub(Duration::days(i64::from(days))) else {
        return false;
    };
    let reference = match &image.last_launched_time {
        Some(launched) => launched,
        None => match &image.creation_date {
            Some(created) => created,
            None => return false,
        },
    };
    parse_time(reference).is_some_and(|at| at <= cutoff)
}

fn image_from(item: &Node) -> Option<Image> {
    let text = |name: &str| {
        item.text_of(name)
            .filter(|value| !value.is_empty())
            .map(String::from)
    };
    Some(Image {
        image_id: text("imageId")?,
        name: text("name"),
        state: text("imageState"),
        creation_date: text("creationDate"),
        last_launched_time: text("lastLaunchedTime"),
        deprecation_time: text("deprecationTime"),
        deregistration_protection: text("deregistrationProtection"),
    })
}

/// A progress line on stderr, drawn only when stderr is a terminal.
struct Progress {
    enabled: bool,
    drawn: bool,
}

impl Progress {
    fn new() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    fn draw(&mut self, label: &str, done: usize, total: Option<usize>) {
        if !self.enabled {
            return;
        }
        const WIDTH: usize = 30;
        let line = match total {
            Some(total) if total > 0 => {
                let filled = done.min(total) * WIDTH / total;
                format!(
                    "[{}{}] {done}/{total} {label}",
                    "#".repeat(filled),
                    "-".repeat(WIDTH - filled)
                )
            }
            _ => format!("{label}: {done}"),
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.drawn = true;
    }

    fn finish(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// All the caller's images (DescribeImages Owner=self, every page).
async fn own_images(ec2: &Ec2, progress: &mut Progress) -> anyhow::Result<Vec<Image>> {
    let mut images = Vec::new();
    let params = vec![
        ("Owner.1".to_string(), "self".to_string()),
        ("IncludeDeprecated".to_string(), "true".to_string()),
        ("IncludeDisabled".to_string(), "true".to_string()),
        ("MaxResults".to_string(), "1000".to_string()),
    ];
    ec2.call_pages("DescribeImages", &params, |reply| {
        images.extend(reply.items("imagesSet").filter_map(image_from));
        progress.draw("images listed", images.len(), None);
    })
    .await?;
    Ok(images)
}

/// Instances of the caller not terminated, per image: DescribeImageReferences
/// (ec2:Instance, state-name = the live states) in batches of 10 images.
async fn references(ec2: &Ec2, ids: &[String]) -> anyhow::Result<HashMap<String, u64>> {
    let mut counts = HashMap::new();
    for batch in ids.chunks(10) {
        let mut params: Vec<(String, String)> = batch
            .iter()
            .enumerate()
            .map(|(at, id)| (format!("ImageId.{}", at + 1), id.clone()))
            .collect();
        params.push(("ResourceType.1.ResourceType".into(), "ec2:Instance".into()));
        params.push((
            "ResourceType.1.ResourceTypeOption.1.OptionName".into(),
            "state-name".into(),
        ));
        for (at, state) in LIVE_STATES.iter().enumerate() {
            params.push((
                format!("ResourceType.1.ResourceTypeOption.1.OptionValue.{}", at + 1),
                (*state).to_string(),
            ));
        }
        params.push(("MaxResults".into(), "1000".into()));
        ec2.call_pages("DescribeImageReferences", &params, |reply| {
            for item in reply.items("imageReferenceSet") {
                if item.text_of("resourceType") != Some("ec2:Instance") {
                    continue;
                }
                if let Some(id) = item.text_of("imageId") {
                    *counts.entry(id.to_string()).or_insert(0) += 1;
                }
            }
        })
        .await?;
    }
    Ok(counts)
}

/// The same counts from DescribeInstances (filters image-id and
/// instance-state-name), for endpoints without DescribeImageReferences.
async fn instances(ec2: &Ec2, ids: &[String]) -> anyhow::Result<HashMap<String, u64>> {
    let mut counts = HashMap::new();
    for batch in ids.chunks(100) {
        let mut params: Vec<(String, String)> = vec![("Filter.1.Name".into(), "image-id".into())];
        for (at, id) in batch.iter().enumerate() {
            params.push((format!("Filter.1.Value.{}", at + 1), id.clone()));
        }
        params.push(("Filter.2.Name".into(), "instance-state-name".into()));
        for (at, state) in LIVE_STATES.iter().enumerate() {
            params.push((format!("Filter.2.Value.{}", at + 1), (*state).to_string()));
        }
        params.push(("MaxResults".into(), "1000".into()));
        ec2.call_pages("DescribeInstances", &params, |reply| {
            for reservation in reply.items("reservationSet") {
                for instance in reservation.items("instancesSet") {
                    let state = instance.find(&["instanceState", "name"]);
                    // The filter already says so; check anyway, a terminated
                    // instance uses nothing.
                    if state.is_some_and(|state| state.text == "terminated") {
                        continue;
                    }
                    if let Some(id) = instance.text_of("imageId")
                        && batch.iter().any(|wanted| wanted == id)
                    {
                        *counts.entry(id.to_string()).or_insert(0) += 1;
                    }
                }
            }
        })
        .await?;
    }
    Ok(counts)
}

/// GetImageAncestry's image IDs, the image itself first; empty when the
/// call fails (an endpoint without the action, an inaccessible image).
async fn ancestry(ec2: &Ec2, id: &str) -> Vec<String> {
    let params = [("ImageId".to_string(), id.to_string())];
    match ec2.call("GetImageAncestry", &params).await {
        Ok(reply) => reply
            .items("imageAncestryEntrySet")
            .filter_map(|entry| entry.text_of("imageId").map(String::from))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Builds the report: the unused images, oldest first.
pub async fn unused(
    ec2: &Ec2,
    days: u32,
    service_now: Option<OffsetDateTime>,
) -> anyhow::Result<Vec<Row>> {
    let mut progress = Progress::new();
    let now = service_now.unwrap_or_else(OffsetDateTime::now_utc);
    let images = own_images(ec2, &mut progress).await?;
    let mut chosen: Vec<Image> = images
        .into_iter()
        .filter(|image| image.state.as_deref() != Some("deregistered"))
        .filter(|image| is_unused(image, now, days))
        .collect();
    chosen.sort_by(|a, b| {
        let created = |image: &Image| image.creation_date.as_deref().and_then(parse_time);
        created(a)
            .cmp(&created(b))
            .then_with(|| a.image_id.cmp(&b.image_id))
    });
    let ids: Vec<String> = chosen.iter().map(|image| image.image_id.clone()).collect();
    let counts = if ids.is_empty() {
        HashMap::new()
    } else {
        match references(ec2, &ids).await {
            Ok(counts) => counts,
            // An endpoint that does not answer DescribeImageReferences (or
            // not with these options): count from DescribeInstances.
            Err(error) if ec2_error(&error).is_some() => instances(ec2, &ids)
                .await
                .context("counting the instances that use the images")?,
            Err(error) => return Err(error),
        }
    };
    let total = chosen.len();
    let mut rows = Vec::with_capacity(total);
    progress.draw("images", 0, Some(total));
    for (done, image) in chosen.into_iter().enumerate() {
        let ancestry = ancestry(ec2, &image.image_id).await;
        rows.push(Row {
            instances_using: counts.get(&image.image_id).copied().unwrap_or(0),
            ancestry,
            image,
        });
        progress.draw("images", done + 1, Some(total));
    }
    progress.finish();
    Ok(rows)
}

/// The string cells of a row, in [`COLUMNS`] order (`None` for absent),
/// with the ancestry joined by `separator`.
fn cells(row: &Row, separator: &str) -> [Option<String>; 8] {
    let image = &row.image;
    [
        Some(image.image_id.clone()),
        image.name.clone(),
        image.creation_date.clone(),
        image.last_launched_time.clone(),
        image.deprecation_time.clone(),
        image.deregistration_protection.clone(),
        Some(row.instances_using.to_string()),
        Some(row.ancestry.join(separator)),
    ]
}

/// A JSON array of objects with exactly the [`COLUMNS`] keys, in that order;
/// `null` for absent values, `InstancesUsing` a number, `Ancestry` an array.
pub fn render_json(rows: &[Row]) -> String {
    use serde_json::Value;
    let string = |value: &Option<String>| match value {
        Some(text) => Value::String(text.clone()),
        None => Value::Null,
    };
    let objects: Vec<String> = rows
        .iter()
        .map(|row| {
            let image = &row.image;
            let values = [
                Value::String(image.image_id.clone()),
                string(&image.name),
                string(&image.creation_date),
                string(&image.last_launched_time),
                string(&image.deprecation_time),
                string(&image.deregistration_protection),
                Value::from(row.instances_using),
                Value::from(row.ancestry.clone()),
            ];
            // serde_json's map sorts its keys: write the object by hand to
            // keep the documented order.
            let fields: Vec<String> = COLUMNS
                .iter()
                .zip(values)
                .map(|(key, value)| format!("    {}: {value}", Value::from(*key)))
                .collect();
            format!("  {{\n{}\n  }}", fields.join(",\n"))
        })
        .collect();
    if objects.is_empty() {
        "[]".to_string()
    } else {
        format!("[\n{}\n]", objects.join(",\n"))
    }
}

/// RFC 4180: a header row then one row per image; absent values are empty
/// fields, the ancestry is joined with `;`.
pub fn render_csv(rows: &[Row]) -> String {
    let quote = |field: &str| {
        if field.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", field.replace('"', "\"\""))
        } else {
            field.to_string()
        }
    };
    let mut lines = vec![COLUMNS.join(",")];
    for row in rows {
        let fields: Vec<String> = cells(row, ";")
            .iter()
            .map(|cell| quote(cell.as_deref().unwrap_or("")))
            .collect();
        lines.push(fields.join(","));
    }
    lines.join("\r\n")
}

/// Aligned columns for people: absent values are `-`, the ancestry is
/// joined with `,`.
pub fn render_table(rows: &[Row]) -> String {
    let table: Vec<Vec<String>> = std::iter::once(COLUMNS.map(String::from).to_vec())
        .chain(rows.iter().map(|row| {
            cells(row, ",")
                .into_iter()
                .map(|cell| match cell {
                    Some(text) if !text.is_empty() => text,
                    _ => "-".to_string(),
                })
                .collect()
        }))
        .collect();
    let widths: Vec<usize> = (0..COLUMNS.len())
        .map(|column| {
            table
                .iter()
                .map(|line| line[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    table
        .iter()
        .map(|line| {
            let padded: Vec<String> = line
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            padded.join("  ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn render(rows: &[Row], format: Format) -> String {
    match format {
        Format::Table => render_table(rows),
        Format::Json => render_json(rows),
        Format::Csv => render_csv(rows),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn image(id: &str, created: Option<&str>, launched: Option<&str>) -> Image {
        Image {
            image_id: id.into(),
            name: Some(format!("name-{id}")),
            state: Some("available".into()),
            creation_date: created.map(String::from),
            last_launched_time: launched.map(String::from),
            deprecation_time: None,
            deregistration_protection: Some("disabled".into()),
        }
    }

    #[test]
    fn unused_counts_from_the_launch_else_the_creation() {
        let now = datetime!(2026-06-30 12:00 UTC);
        // Never launched: the creation date decides.
        let old = image("ami-old", Some("2026-05-01T00:00:00.000Z"), None);
        let new = image("ami-new", Some("2026-06-29T00:00:00.000Z"), None);
        assert!(is_unused(&old, now, 30));
        assert!(!is_unused(&new, now, 30));
        assert!(is_unused(&new, now, 0), "--days 0 lists every image");
        // Launched: the launch decides, whatever the creation date.
        let relaunched = image(
            "ami-l",
            Some("2020-01-01T00:00:00.000Z"),
            Some("2026-06-20T00:00:00Z"),
        );
        assert!(!is_unused(&relaunched, now, 30));
        assert!(is_unused(&relaunched, now, 10));
        // Exactly N days: unused (the launch is N days old).
        let edge = image("ami-e", None, Some("2026-05-31T12:00:00Z"));
        assert!(is_unused(&edge, now, 30));
        assert!(!is_unused(&edge, now, 31));
        // Unreadable or absent dates: not listed.
        assert!(!is_unused(&image("ami-x", Some("yesterday"), None), now, 1));
        assert!(!is_unused(&image("ami-y", None, None), now, 0));
        assert!(!is_unused(&old, now, u32::MAX), "no overflow");
    }

    fn rows() -> Vec<Row> {
        vec![
            Row {
                image: Image {
                    deprecation_time: Some("2027-01-01T00:00:00.000Z".into()),
                    ..image("ami-1", Some("2026-01-01T00:00:00.000Z"), None)
                },
                instances_using: 2,
                ancestry: vec!["ami-1".into(), "ami-0".into()],
            },
            Row {
                image: Image {
                    name: Some("with, comma \"q\"".into()),
                    ..image("ami-2", None, Some("2026-02-01T00:00:00Z"))
                },
                instances_using: 0,
                ancestry: vec![],
            },
        ]
    }

    #[test]
    fn json_has_exactly_the_keys_in_order() {
        let text = render_json(&rows());
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let array = parsed.as_array().unwrap();
        assert_eq!(array.len(), 2);
        for object in array {
            let mut keys: Vec<&str> = object
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            keys.sort_unstable();
            let mut expected = COLUMNS.to_vec();
            expected.sort_unstable();
            assert_eq!(keys, expected);
        }
        assert_eq!(array[0]["InstancesUsing"], 2);
        assert_eq!(array[0]["Ancestry"], serde_json::json!(["ami-1", "ami-0"]));
        assert_eq!(array[0]["LastLaunchedTime"], serde_json::Value::Null);
        assert_eq!(array[1]["CreationDate"], serde_json::Value::Null);
        assert_eq!(array[1]["Ancestry"], serde_json::json!([]));
        // Written in the documented order.
        let positions: Vec<usize> = COLUMNS
            .iter()
            .map(|key| text.find(&format!("\"{key}\"")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(render_json(&[]), "[]");
    }

    #[test]
    fn csv_quotes_and_joins() {
        let text = render_csv(&rows());
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "ami-1,name-ami-1,2026-01-01T00:00:00.000Z,,2027-01-01T00:00:00.000Z,disabled,2,ami-1;ami-0"
        );
        assert_eq!(
            lines[2],
            "ami-2,\"with, comma \"\"q\"\"\",,2026-02-01T00:00:00Z,,disabled,0,"
        );
    }

    /// A fake EC2 endpoint: answers from `reply(action, form)`; one
    /// request per connection, as the client sends them.
    async fn fake_endpoint(
        reply: fn(&str, &str) -> (u16, String),
    ) -> (String, tokio::task::JoinHandle<()>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let read = socket.read(&mut chunk).await.unwrap();
                    buffer.extend_from_slice(&chunk[..read]);
                    let text = String::from_utf8_lossy(&buffer).to_string();
                    if let Some(at) = text.find("\r\n\r\n") {
                        let head = text[..at].to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|line| line.strip_prefix("content-length:"))
                            .map_or(0, |value| value.trim().parse().unwrap());
                        if text.len() >= at + 4 + length {
                            break (head, text[at + 4..at + 4 + length].to_string());
                        }
                    }
                    if read == 0 {
                        return;
                    }
                };
                let (status, text) = if head.starts_with("get /_hangar/clock") {
                    (404, "not found".to_string())
                } else {
                    let action = body
                        .split('&')
                        .find_map(|pair| pair.strip_prefix("Action="))
                        .unwrap_or_default()
                        .to_string();
                    reply(&action, &body)
                };
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
                socket.write_all(answer.as_bytes()).await.unwrap();
                let _ = socket.shutdown().await;
            }
        });
        (url, task)
    }

    fn error(code: &str) -> (u16, String) {
        (
            400,
            format!(
                "<Response><Errors><Error><Code>{code}</Code><Message>no {code}</Message>\
                 </Error></Errors><RequestID>r</RequestID></Response>"
            ),
        )
    }

    fn fake_ec2(action: &str, form: &str) -> (u16, String) {
        let item = |id: &str, state: &str, created: &str, launched: &str| {
            format!(
                "<item><imageId>{id}</imageId><name>n-{id}</name><imageState>{state}</imageState>\
                 <creationDate>{created}</creationDate>{launched}\
                 <deregistrationProtection>disabled</deregistrationProtection></item>"
            )
        };
        match action {
            "DescribeImages" => {
                assert!(form.contains("Owner.1=self"), "{form}");
                assert!(form.contains("MaxResults="), "{form}");
                let body = if form.contains("NextToken=page2") {
                    format!(
                        "<imagesSet>{}{}{}</imagesSet>",
                        item(
                            "ami-2",
                            "available",
                            "2020-01-02T00:00:00.000Z",
                            "<lastLaunchedTime>2020-02-01T00:00:00Z</lastLaunchedTime>"
                        ),
                        item("ami-3", "available", "2999-01-01T00:00:00.000Z", ""),
                        item("ami-4", "deregistered", "2020-01-01T00:00:00.000Z", ""),
                    )
                } else {
                    format!(
                        "<imagesSet>{}</imagesSet><nextToken>page2</nextToken>",
                        item("ami-1", "available", "2020-01-01T00:00:00.000Z", "")
                    )
                };
                (
                    200,
                    format!("<DescribeImagesResponse>{body}</DescribeImagesResponse>"),
                )
            }
            "DescribeImageReferences" => error("InvalidAction"),
            "DescribeInstances" => {
                assert!(form.contains("Filter.1.Name=image-id"), "{form}");
                let instance = |image: &str, state: &str| {
                    format!(
                        "<item><instanceId>i-{image}{state}</instanceId><imageId>{image}</imageId>\
                         <instanceState><code>0</code><name>{state}</name></instanceState></item>"
                    )
                };
                (
                    200,
                    format!(
                        "<DescribeInstancesResponse><reservationSet><item><instancesSet>{}{}{}\
                         </instancesSet></item></reservationSet></DescribeInstancesResponse>",
                        instance("ami-1", "running"),
                        instance("ami-1", "terminated"),
                        instance("ami-2", "stopped"),
                    ),
                )
            }
            "GetImageAncestry" if form.contains("ImageId=ami-1") => (
                200,
                "<GetImageAncestryResponse><imageAncestryEntrySet>\
                 <item><imageId>ami-1</imageId></item><item><imageId>ami-0</imageId></item>\
                 </imageAncestryEntrySet></GetImageAncestryResponse>"
                    .to_string(),
            ),
            "GetImageAncestry" => error("InvalidAMIID.NotFound"),
            other => panic!("unexpected action {other}"),
        }
    }

    /// Pagination, the local clock when `/_hangar/clock` is not answered,
    /// the DescribeInstances fallback and an empty ancestry on failure.
    #[tokio::test]
    async fn report_against_a_plain_ec2_endpoint() {
        use crate::awsconfig::Credentials;
        use crate::client::{Ec2, Endpoint, Http};
        let (url, task) = fake_endpoint(fake_ec2).await;
        let http = Http::new(Endpoint::parse(&url).unwrap(), None).unwrap();
        let credentials = Credentials {
            access_key_id: "AKIA".into(),
            secret_access_key: "secret".into(),
            session_token: None,
        };
        let ec2 = Ec2::new(http, credentials, "us-east-1");
        let now = crate::clock::service_now(ec2.http()).await;
        assert_eq!(now, None, "no dev clock there: the local clock");
        let rows = unused(&ec2, 30, now).await.unwrap();
        let summary: Vec<(&str, u64, Vec<String>)> = rows
            .iter()
            .map(|row| {
                (
                    row.image.image_id.as_str(),
                    row.instances_using,
                    row.ancestry.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("ami-1", 1, vec!["ami-1".to_string(), "ami-0".to_string()]),
                ("ami-2", 1, vec![]),
            ]
        );
        let error = ec2.call("DescribeImageReferences", &[]).await.unwrap_err();
        assert_eq!(
            crate::client::ec2_error(&error).map(|e| e.code.as_str()),
            Some("InvalidAction")
        );
        assert!(format!("{error:#}").contains("InvalidAction"));
        task.abort();
    }

    #[test]
    fn table_aligns_columns() {
        let text = render_table(&rows());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ImageId  Name"), "{}", lines[0]);
        // Every column starts at the same offset on every line.
        let start = |line: &str, cell: &str| line.find(cell).unwrap();
        assert_eq!(
            start(lines[0], "InstancesUsing"),
            start(lines[1], " 2 ") + 1
        );
        assert!(lines[1].ends_with("ami-1,ami-0"));
        assert_eq!(
            lines[2].len() - 1,
            start(lines[0], "Ancestry"),
            "an empty ancestry is a `-` in its column: {}",
            lines[2]
        );
        assert_eq!(render_table(&[]).lines().count(), 1);
    }
}
