//! The rules on the store's answers, and the answers as the client reads
//! them: S3's XML documents and error bodies served by a fake HTTP client,
//! so the whole path from the store's bytes to the decision is checked.

use super::*;

use aws_sdk_s3::config::RuntimeComponents;
use aws_sdk_s3::config::http::{HttpRequest, HttpResponse};
use aws_sdk_s3::primitives::SdkBody;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::http::StatusCode;

fn caller(account: &str) -> Caller {
    Caller {
        account_id: account.into(),
        region: "us-east-1".into(),
    }
}

#[test]
fn public_access_block_rules() {
    let on = PublicAccessAnswer::Config([true; 4]);
    assert_eq!(
        public_reason("b", &on, &PolicyAnswer::NoPolicy).unwrap(),
        None
    );
    let reason = public_reason(
        "b",
        &PublicAccessAnswer::Config([true, false, true, false]),
        &PolicyAnswer::NoPolicy,
    )
    .unwrap()
    .unwrap();
    assert!(reason.contains("not fully enabled"), "{reason}");
    assert!(
        reason.contains("IgnorePublicAcls, RestrictPublicBuckets off"),
        "{reason}"
    );
    let reason = public_reason("b", &PublicAccessAnswer::Missing, &PolicyAnswer::NoPolicy)
        .unwrap()
        .unwrap();
    assert!(
        reason.contains("NoSuchPublicAccessBlockConfiguration") && reason.contains("not blocked"),
        "{reason}"
    );
    assert!(
        public_reason(
            "b",
            &PublicAccessAnswer::Unsupported,
            &PolicyAnswer::NoPolicy
        )
        .unwrap()
        .is_some()
    );
}

#[test]
fn policy_status_rules() {
    let on = PublicAccessAnswer::Config([true; 4]);
    // No IsPublic counts as not public, as does IsPublic false.
    assert_eq!(
        public_reason("b", &on, &PolicyAnswer::Status(None)).unwrap(),
        None
    );
    assert_eq!(
        public_reason("b", &on, &PolicyAnswer::Status(Some(false))).unwrap(),
        None
    );
    let reason = public_reason("b", &on, &PolicyAnswer::Status(Some(true)))
        .unwrap()
        .unwrap();
    assert!(reason.contains("IsPublic"), "{reason}");
    // A document, judged by the domain's evaluator.
    let public = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
    let reason = public_reason("b", &on, &PolicyAnswer::Document(public.into()))
        .unwrap()
        .unwrap();
    assert!(reason.contains("public"), "{reason}");
    let private = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
    assert_eq!(
        public_reason("b", &on, &PolicyAnswer::Document(private.into())).unwrap(),
        None
    );
    let reason = public_reason("b", &on, &PolicyAnswer::Document("not json".into()))
        .unwrap()
        .unwrap();
    assert!(reason.contains("cannot be judged"), "{reason}");
}

#[test]
fn regions_and_encryption() {
    assert_eq!(region_of(None), "us-east-1");
    assert_eq!(region_of(Some("")), "us-east-1");
    assert_eq!(region_of(Some("EU")), "eu-west-1");
    assert_eq!(region_of(Some("us-west-2")), "us-west-2");
    assert_eq!(encryption_warning("b", Some(true)), None);
    assert!(encryption_warning("b", Some(false)).is_some());
    assert!(encryption_warning("b", None).is_some());
}

#[test]
fn tags_are_query_encoded() {
    let tags = BTreeMap::from([
        ("team".to_owned(), "a b&c=d".to_owned()),
        ("k~.-_".to_owned(), "é".to_owned()),
    ]);
    assert_eq!(tagging_header(&tags), "k~.-_=%C3%A9&team=a%20b%26c%3Dd");
}

/// One canned answer per request, chosen by what the request asks.
type Route = fn(&HttpRequest) -> Option<(u16, &'static str)>;

/// The client's HTTP connection, answering from the routes.
#[derive(Debug, Clone)]
struct Canned(Arc<Vec<Route>>);

impl HttpConnector for Canned {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (status, body) = self
            .0
            .iter()
            .find_map(|route| route(&request))
            .unwrap_or((500, "<Error><Code>Unexpected</Code></Error>"));
        let status = StatusCode::try_from(status).expect("a valid status");
        HttpConnectorFuture::ready(Ok(HttpResponse::new(status, SdkBody::from(body))))
    }
}

impl HttpClient for Canned {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

fn store(routes: Vec<Route>, grants: BTreeMap<String, Vec<String>>) -> ExternalBuckets {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
        .endpoint_url("http://store.test")
        .force_path_style(true)
        .http_client(Canned(Arc::new(routes)))
        .build();
    ExternalBuckets {
        inner: Arc::new(Inner {
            base: Client::from_conf(config),
            custom_endpoint: true,
            by_region: Mutex::new(HashMap::new()),
            grants,
            endpoint_description: "http://store.test".into(),
        }),
    }
}

fn query(request: &HttpRequest) -> String {
    request
        .uri()
        .split_once('?')
        .map(|(_, query)| query.to_owned())
        .unwrap_or_default()
}

fn bucket_record(name: &str) -> Bucket {
    Bucket {
        name: name.into(),
        region: "us-east-1".into(),
        owner_id: "111122223333".into(),
        created_ms: 0,
        public_access_block: None,
        policy: None,
        encryption: BucketEncryption::default(),
        revision: 0,
    }
}

const LOCATION_WEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">us-west-2</LocationConstraint>"#;
const LOCATION_NONE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>"#;
const NO_SUCH_BUCKET: &str = "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
const ACCESS_DENIED: &str =
    "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";

#[tokio::test]
async fn location_answers_give_the_region() {
    let west = store(
        vec![
            |r| {
                query(r)
                    .contains("location")
                    .then_some((200, LOCATION_WEST))
            },
            |r| (r.method() == "HEAD").then_some((200, "")),
        ],
        BTreeMap::new(),
    );
    let bucket = west.resolve(&caller("111122223333"), "b").await.unwrap();
    assert_eq!(bucket.region, "us-west-2");
    let east = store(
        vec![
            |r| {
                query(r)
                    .contains("location")
                    .then_some((200, LOCATION_NONE))
            },
            |r| (r.method() == "HEAD").then_some((200, "")),
        ],
        BTreeMap::new(),
    );
    let bucket = east.resolve(&caller("111122223333"), "b").await.unwrap();
    assert_eq!(bucket.region, "us-east-1");
}

#[tokio::test]
async fn missing_and_refused_buckets() {
    let missing = store(
        vec![|r| {
            query(r)
                .contains("location")
                .then_some((404, NO_SUCH_BUCKET))
        }],
        BTreeMap::new(),
    );
    assert!(matches!(
        missing.resolve(&caller("111122223333"), "b").await,
        Err(BucketError::NoSuchBucket(_))
    ));
    // HeadBucket answers with a status and no body.
    let head_missing = store(
        vec![
            |r| {
                query(r)
                    .contains("location")
                    .then_some((200, LOCATION_NONE))
            },
            |r| (r.method() == "HEAD").then_some((404, "")),
        ],
        BTreeMap::new(),
    );
    assert!(matches!(
        head_missing.resolve(&caller("111122223333"), "b").await,
        Err(BucketError::NoSuchBucket(_))
    ));
    let refused = store(
        vec![|r| {
            query(r)
                .contains("location")
                .then_some((403, ACCESS_DENIED))
        }],
        BTreeMap::new(),
    );
    assert!(matches!(
        refused.resolve(&caller("111122223333"), "b").await,
        Err(BucketError::AccessDenied(_))
    ));
}

#[tokio::test]
async fn grants_refuse_before_asking_the_store() {
    let grants = BTreeMap::from([("b".to_owned(), vec!["111122223333".to_owned()])]);
    // The store would refuse everything: a granted account reaches it, an
    // other one is refused by the grant without a request.
    let granted = store(
        vec![
            |r| {
                query(r)
                    .contains("location")
                    .then_some((200, LOCATION_NONE))
            },
            |r| (r.method() == "HEAD").then_some((200, "")),
        ],
        grants,
    );
    assert!(granted.isolates_accounts());
    assert!(granted.resolve(&caller("111122223333"), "b").await.is_ok());
    match granted.resolve(&caller("444455556666"), "b").await {
        Err(BucketError::AccessDenied(detail)) => {
            assert!(
                detail.contains("not granted to account 444455556666"),
                "{detail}"
            )
        }
        other => panic!("expected AccessDenied, got {other:?}"),
    }
    assert!(matches!(
        granted.resolve(&caller("111122223333"), "other").await,
        Err(BucketError::AccessDenied(_))
    ));
}

const BLOCK_ALL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<PublicAccessBlockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <BlockPublicAcls>true</BlockPublicAcls><IgnorePublicAcls>true</IgnorePublicAcls>
  <BlockPublicPolicy>true</BlockPublicPolicy><RestrictPublicBuckets>true</RestrictPublicBuckets>
</PublicAccessBlockConfiguration>"#;
const BLOCK_SOME: &str = r#"<PublicAccessBlockConfiguration>
  <BlockPublicAcls>true</BlockPublicAcls><IgnorePublicAcls>true</IgnorePublicAcls>
  <BlockPublicPolicy>false</BlockPublicPolicy>
</PublicAccessBlockConfiguration>"#;
const NO_BLOCK: &str = "<Error><Code>NoSuchPublicAccessBlockConfiguration</Code><Message>The public access block configuration was not found</Message></Error>";
const STATUS_PUBLIC: &str = "<PolicyStatus><IsPublic>true</IsPublic></PolicyStatus>";
const STATUS_EMPTY: &str = "<PolicyStatus></PolicyStatus>";
const NO_POLICY: &str = "<Error><Code>NoSuchBucketPolicy</Code><Message>The bucket policy does not exist</Message></Error>";
const LISTING: &str =
    "<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated></ListBucketResult>";
const ENCRYPTED: &str = r#"<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"#;
const NOT_ENCRYPTED: &str = "<Error><Code>ServerSideEncryptionConfigurationNotFoundError</Code><Message>The server side encryption configuration was not found</Message></Error>";
const PUBLIC_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;

#[tokio::test]
async fn a_blocked_private_encrypted_bucket_passes() {
    let store = store(
        vec![
            |r| {
                query(r)
                    .contains("publicAccessBlock")
                    .then_some((200, BLOCK_ALL))
            },
            |r| {
                query(r)
                    .contains("policyStatus")
                    .then_some((200, STATUS_EMPTY))
            },
            |r| query(r).contains("encryption").then_some((200, ENCRYPTED)),
        ],
        BTreeMap::new(),
    );
    let security = store.judge(&bucket_record("b")).await.unwrap();
    assert_eq!(security, BucketSecurity::default());
}

#[tokio::test]
async fn each_rule_says_why() {
    let partial = store(
        vec![
            |r| {
                query(r)
                    .contains("publicAccessBlock")
                    .then_some((200, BLOCK_SOME))
            },
            |r| {
                query(r)
                    .contains("policyStatus")
                    .then_some((404, NO_POLICY))
            },
            |r| query(r).contains("encryption").then_some((200, ENCRYPTED)),
        ],
        BTreeMap::new(),
    );
    let reason = partial
        .judge(&bucket_record("b"))
        .await
        .unwrap()
        .public_reason
        .unwrap();
    assert!(
        reason.contains("BlockPublicPolicy, RestrictPublicBuckets off"),
        "{reason}"
    );
    let missing = store(
        vec![
            |r| {
                query(r)
                    .contains("publicAccessBlock")
                    .then_some((404, NO_BLOCK))
            },
            |r| {
                query(r)
                    .contains("policyStatus")
                    .then_some((404, NO_POLICY))
            },
            |r| query(r).contains("encryption").then_some((200, ENCRYPTED)),
        ],
        BTreeMap::new(),
    );
    let reason = missing
        .judge(&bucket_record("b"))
        .await
        .unwrap()
        .public_reason
        .unwrap();
    assert!(
        reason.contains("NoSuchPublicAccessBlockConfiguration"),
        "{reason}"
    );
    let public = store(
        vec![
            |r| {
                query(r)
                    .contains("publicAccessBlock")
                    .then_some((200, BLOCK_ALL))
            },
            |r| {
                query(r)
                    .contains("policyStatus")
                    .then_some((200, STATUS_PUBLIC))
            },
            |r| {
                query(r)
                    .contains("encryption")
                    .then_some((404, NOT_ENCRYPTED))
            },
        ],
        BTreeMap::new(),
    );
    let security = public.judge(&bucket_record("b")).await.unwrap();
    assert!(security.public_reason.unwrap().contains("IsPublic is true"));
    assert!(
        security
            .encryption_warning
            .unwrap()
            .contains("no default encryption")
    );
}

#[tokio::test]
async fn a_store_without_policy_status_has_its_document_judged() {
    // moto answers `?policyStatus` with a listing of the bucket.
    let public = store(
        vec![
            |r| {
                query(r)
                    .contains("publicAccessBlock")
                    .then_some((200, BLOCK_ALL))
            },
            |r| query(r).contains("policyStatus").then_some((200, LISTING)),
            |r| {
                query(r)
                    .starts_with("policy")
                    .then_some((200, PUBLIC_POLICY))
            },
            |r| query(r).contains("encryption").then_some((200, ENCRYPTED)),
        ],
        BTreeMap::new(),
    );
    let reason = public
        .judge(&bucket_record("b"))
        .await
        .unwrap()
        .public_reason
        .unwrap();
    assert!(reason.contains("policy document"), "{reason}");
    let none = store(
        vec![
            |r| {
                query(r)
                    .contains("publicAccessBlock")
                    .then_some((200, BLOCK_ALL))
            },
            |r| query(r).contains("policyStatus").then_some((200, LISTING)),
            |r| query(r).starts_with("policy").then_some((404, NO_POLICY)),
            |r| query(r).contains("encryption").then_some((200, ENCRYPTED)),
        ],
        BTreeMap::new(),
    );
    assert_eq!(
        none.judge(&bucket_record("b")).await.unwrap(),
        BucketSecurity::default()
    );
}

#[tokio::test]
async fn parts_are_listed_across_pages() {
    const PAGE_1: &str = r#"<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>u</UploadId>
<NextPartNumberMarker>2</NextPartNumberMarker><IsTruncated>true</IsTruncated>
<Part><PartNumber>1</PartNumber><ETag>"aa"</ETag><Size>5</Size></Part>
<Part><PartNumber>2</PartNumber><ETag>"bb"</ETag><Size>6</Size></Part></ListPartsResult>"#;
    const PAGE_2: &str = r#"<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>u</UploadId>
<IsTruncated>false</IsTruncated>
<Part><PartNumber>3</PartNumber><ETag>"cc"</ETag><Size>1</Size></Part></ListPartsResult>"#;
    const NO_UPLOAD: &str = "<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist</Message></Error>";
    let store = store(
        vec![
            |r| {
                query(r)
                    .contains("part-number-marker=2")
                    .then_some((200, PAGE_2))
            },
            |r| query(r).contains("uploadId=u").then_some((200, PAGE_1)),
            |r| {
                query(r)
                    .contains("uploadId=gone")
                    .then_some((404, NO_UPLOAD))
            },
        ],
        BTreeMap::new(),
    );
    let parts = store
        .list_parts(&bucket_record("b"), "k", "u")
        .await
        .unwrap();
    assert_eq!(
        parts,
        vec![
            (1, "aa".to_owned(), 5),
            (2, "bb".to_owned(), 6),
            (3, "cc".to_owned(), 1)
        ]
    );
    assert!(matches!(
        store.list_parts(&bucket_record("b"), "k", "gone").await,
        Err(BucketError::NoSuchUpload(_))
    ));
    // Aborting an upload that is gone is not an error.
    assert!(
        store
            .abort_upload(&bucket_record("b"), "k", "gone")
            .await
            .is_ok()
    );
}

#[test]
fn part_etags_are_md5() {
    let store = store(Vec::new(), BTreeMap::new());
    assert_eq!(
        store.part_etag(&[]).as_deref(),
        Some("d41d8cd98f00b204e9800998ecf8427e")
    );
}
