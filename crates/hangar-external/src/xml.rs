//! A small XML tree reader (namespaces dropped, text trimmed), used for a
//! tolerant reading of the few S3 documents the SDK refuses from some
//! stores: moto names the roots of its `ListParts` and
//! `CompleteMultipartUpload` answers `…Response` instead of `…Result`, and
//! the SDK checks the root's name. The contents are S3's, so they are read
//! here whatever the root is called. The `hangar` CLI reads EC2 replies
//! with the same tree.

use quick_xml::events::Event;

/// One element: its local name, trimmed text and children.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|child| child.name == name)
    }

    /// Follows a path of child names.
    pub fn find(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, name| node.child(name))
    }

    /// The `item` children of child `name` (an EC2 list).
    pub fn items(&self, name: &str) -> impl Iterator<Item = &Node> {
        self.child(name)
            .into_iter()
            .flat_map(|list| list.children.iter().filter(|item| item.name == "item"))
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |child| child.name == name)
    }

    /// The text of child `name`, if present.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|child| child.text.as_str())
    }
}

/// The root element of `body`.
pub fn parse(body: &[u8]) -> Result<Node, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the document is not UTF-8".to_owned())?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Node> = vec![Node::default()];
    let local = |name: &str| match name.rsplit_once(':') {
        Some((_, local)) => local.to_owned(),
        None => name.to_owned(),
    };
    let unbalanced = || "unbalanced XML".to_owned();
    loop {
        match reader.read_event().map_err(|error| error.to_string())? {
            Event::Start(start) => stack.push(Node {
                name: local(start.name().as_ref()),
                ..Node::default()
            }),
            Event::Empty(empty) => {
                let node = Node {
                    name: local(empty.name().as_ref()),
                    ..Node::default()
                };
                stack.last_mut().ok_or_else(unbalanced)?.children.push(node);
            }
            Event::End(_) => {
                let mut node = stack.pop().ok_or_else(unbalanced)?;
                node.text = node.text.trim().to_owned();
                stack.last_mut().ok_or_else(unbalanced)?.children.push(node);
            }
            Event::Text(text) => {
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&text.xml10_content());
                }
            }
            Event::CData(data) => {
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&data);
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference
                    .resolve_char_ref()
                    .map_err(|error| error.to_string())?
                {
                    Some(character) => character.to_string(),
                    None => {
                        let name = reference.to_string();
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("unknown XML entity &{name};"))?
                            .to_owned()
                    }
                };
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut document = stack.pop().ok_or_else(unbalanced)?;
    if !stack.is_empty() || document.children.len() != 1 {
        return Err("not one XML document".into());
    }
    Ok(document.children.remove(0))
}

/// One page of `ListParts`: (number, ETag without quotes, size) of each
/// part, and the marker of the next page when the listing is truncated.
pub(crate) type PartsPage = (Vec<(i32, String, i64)>, Option<String>);

pub(crate) fn parts_page(body: &[u8]) -> Result<PartsPage, String> {
    let root = parse(body)?;
    if root.name == "Error" {
        return Err(format!(
            "the store answered an error: {}",
            root.text_of("Code").unwrap_or("no code")
        ));
    }
    let mut parts = Vec::new();
    for part in root.all("Part") {
        let number = part
            .text_of("PartNumber")
            .and_then(|number| number.parse().ok())
            .ok_or("a part without a PartNumber")?;
        let size = part
            .text_of("Size")
            .and_then(|size| size.parse().ok())
            .ok_or("a part without a Size")?;
        let etag = part
            .text_of("ETag")
            .unwrap_or("")
            .trim_matches('"')
            .to_owned();
        parts.push((number, etag, size));
    }
    let truncated = root.text_of("IsTruncated") == Some("true");
    let next = root
        .text_of("NextPartNumberMarker")
        .filter(|marker| truncated && !marker.is_empty())
        .map(str::to_owned);
    Ok((parts, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// moto 5's answer, root and all.
    const MOTO_LIST_PARTS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<ListPartsResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>k.bin</Key><UploadId>u</UploadId><StorageClass>STANDARD</StorageClass><Initiator><ID>i</ID><DisplayName>d</DisplayName></Initiator><Owner><ID>o</ID><DisplayName>webfile</DisplayName></Owner><PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>2</NextPartNumberMarker><MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated>
<Part><PartNumber>1</PartNumber><LastModified>2026-12-01T00:27:26.000Z</LastModified><ETag>&quot;5d41402abc4b2a76b9719d911017c592&quot;</ETag><Size>5242880</Size></Part>
<Part><PartNumber>2</PartNumber><ETag>"7d793037a0760186574b0282f2f435e7"</ETag><Size>17</Size></Part>
</ListPartsResponse>"#;

    #[test]
    fn parts_read_whatever_the_root_is_called() {
        let (parts, next) = parts_page(MOTO_LIST_PARTS.as_bytes()).unwrap();
        assert_eq!(
            parts,
            vec![
                (1, "5d41402abc4b2a76b9719d911017c592".to_owned(), 5_242_880),
                (2, "7d793037a0760186574b0282f2f435e7".to_owned(), 17),
            ]
        );
        // Not truncated: no next page, whatever the marker says.
        assert_eq!(next, None);
        let truncated = MOTO_LIST_PARTS.replace(
            "<IsTruncated>false</IsTruncated>",
            "<IsTruncated>true</IsTruncated>",
        );
        assert_eq!(
            parts_page(truncated.as_bytes()).unwrap().1.as_deref(),
            Some("2")
        );
    }

    #[test]
    fn bad_documents_are_errors() {
        assert!(parts_page(b"<Error><Code>NoSuchUpload</Code></Error>").is_err());
        assert!(
            parts_page(b"<ListPartsResult><Part><Size>1</Size></Part></ListPartsResult>").is_err()
        );
        assert!(parts_page(b"<a><b></a>").is_err());
        assert!(parts_page(b"").is_err());
        assert!(parts_page(&[0xff, 0xfe]).is_err());
    }
}
