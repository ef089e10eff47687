//! The EC2 Query protocol.
//!
//! A request arrives as form parameters and a verified [`Caller`]; it is
//! parsed once into a typed [`action::Action`], dispatched to the domain
//! ([`hangar_core::Hangar`]), and the result or error is written as EC2 XML.
//! This is the only crate that knows EC2's wire shapes.

pub mod action;
pub mod error;
pub mod params;
pub mod render;
pub mod xml;

use hangar_core::images::ImageAttributeName;
use hangar_core::{Caller, Error, Hangar};

use crate::action::{Action, Request};
use crate::error::WireError;
use crate::params::{Limits, Params};
use crate::render::Reply;

/// A finished response: HTTP status and XML body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
    /// The action's name when it parsed, for logs and metrics.
    pub action: Option<&'static str>,
    /// The domain error behind a 5xx, for the server's log only.
    pub internal_detail: Option<String>,
    /// Advice for the server's log about a request that succeeded (e.g. a
    /// bucket without default encryption).
    pub warnings: Vec<String>,
}

impl Response {
    pub fn error(error: &WireError, request_id: &str) -> Self {
        Self {
            status: error.status,
            body: error.render(request_id),
            action: None,
            internal_detail: None,
            warnings: Vec::new(),
        }
    }
}

/// Handles one EC2 request end to end.
pub async fn handle(
    hangar: &Hangar,
    caller: &Caller,
    form: &[u8],
    limits: Limits,
    request_id: &str,
) -> Response {
    let request = match Params::from_form(form, limits).and_then(|params| action::parse(&params)) {
        Ok(request) => request,
        Err(error) => return Response::error(&WireError::from(error), request_id),
    };
    let name = request.action.name();
    let mut warnings = Vec::new();
    match dispatch(hangar, caller, request, &mut warnings).await {
        Ok(reply) => Response {
            status: 200,
            body: render::render(name, request_id, &reply),
            action: Some(name),
            internal_detail: None,
            warnings,
        },
        Err(error) => {
            let mut response = Response::error(&WireError::from(&error), request_id);
            response.action = Some(name);
            if let Error::Internal(detail) = error {
                response.internal_detail = Some(detail);
            }
            response
        }
    }
}

/// Runs a read-only action and, under `DryRun`, answers `DryRunOperation`
/// instead of its result.
fn read_only(dry_run: bool, result: Result<Reply, Error>) -> Result<Reply, Error> {
    match (dry_run, result) {
        (true, Ok(_)) => Err(Error::DryRunOperation),
        (_, result) => result,
    }
}

async fn dispatch(
    hangar: &Hangar,
    caller: &Caller,
    request: Request,
    warnings: &mut Vec<String>,
) -> Result<Reply, Error> {
    let dry_run = request.dry_run;
    match request.action {
        Action::RegisterImage(input) => hangar
            .register_image(caller, input, dry_run)
            .await
            .map(Reply::ImageId),
        Action::DescribeImages(input) => read_only(
            dry_run,
            hangar
                .describe_images(caller, input)
                .await
                .map(Reply::Images),
        ),
        Action::DescribeImageAttribute {
            image_id,
            attribute,
        } => {
            let attribute = ImageAttributeName::parse(&attribute)?;
            read_only(
                dry_run,
                hangar
                    .describe_image_attribute(caller, &image_id, attribute)
                    .await
                    .map(Reply::ImageAttribute),
            )
        }
        Action::ModifyImageAttribute(input) => hangar
            .modify_image_attribute(caller, input, dry_run)
            .await
            .map(|()| Reply::Return(true)),
        Action::ResetImageAttribute {
            image_id,
            attribute,
        } => hangar
            .reset_image_attribute(caller, &image_id, &attribute, dry_run)
            .await
            .map(|()| Reply::Return(true)),
        Action::DeregisterImage {
            image_id,
            delete_associated_snapshots,
        } => hangar
            .deregister_image(caller, &image_id, delete_associated_snapshots, dry_run)
            .await
            .map(Reply::Deregistered),
        Action::CreateTags { resource_ids, tags } => hangar
            .create_tags(caller, &resource_ids, &tags, dry_run)
            .await
            .map(|()| Reply::Return(true)),
        Action::DeleteTags { resource_ids, tags } => hangar
            .delete_tags(caller, &resource_ids, &tags, dry_run)
            .await
            .map(|()| Reply::Return(true)),
        Action::DescribeTags {
            filters,
            max_results,
            next_token,
        } => read_only(
            dry_run,
            hangar
                .describe_tags(caller, &filters, max_results, next_token.as_deref())
                .await
                .map(Reply::Tags),
        ),
        Action::DescribeRegions {
            region_names,
            all_regions: _,
            filters,
        } => read_only(
            dry_run,
            hangar
                .describe_regions(&region_names, &filters)
                .map(Reply::Regions),
        ),
        Action::DescribeAvailabilityZones {
            zone_names,
            zone_ids,
            all_availability_zones: _,
            filters,
        } => read_only(
            dry_run,
            hangar
                .describe_availability_zones(caller, &zone_names, &zone_ids, &filters)
                .map(Reply::Zones),
        ),
        Action::DescribeSnapshots(input) => read_only(
            dry_run,
            hangar
                .describe_snapshots(caller, input)
                .await
                .map(Reply::Snapshots),
        ),
        Action::DeleteSnapshot { snapshot_id } => hangar
            .delete_snapshot(caller, &snapshot_id, dry_run)
            .await
            .map(|()| Reply::Return(true)),
        Action::CopySnapshot(input) => {
            let snapshot_id = hangar.copy_snapshot(caller, input, dry_run).await?;
            let tags = hangar
                .visible_snapshot(caller, &snapshot_id)
                .await
                .map(|snapshot| snapshot.tags)
                .unwrap_or_default();
            Ok(Reply::CopiedSnapshot { snapshot_id, tags })
        }
        Action::CreateSnapshot {
            volume_id,
            description,
            tag_specifications,
        } => hangar
            .create_snapshot(
                caller,
                &volume_id,
                description,
                &tag_specifications,
                dry_run,
            )
            .await
            .map(|snapshot| Reply::Snapshot(Box::new(snapshot))),
        Action::DescribeVolumes {
            volume_ids,
            filters,
            max_results,
            next_token,
        } => read_only(
            dry_run,
            hangar
                .describe_volumes(
                    caller,
                    &volume_ids,
                    &filters,
                    max_results,
                    next_token.as_deref(),
                )
                .await
                .map(Reply::Volumes),
        ),
        Action::RunInstances(input) => hangar
            .run_instances(caller, input, dry_run)
            .await
            .map(Reply::Reservation),
        Action::DescribeInstances {
            instance_ids,
            filters,
            max_results,
            next_token,
        } => read_only(
            dry_run,
            hangar
                .describe_instances(
                    caller,
                    &instance_ids,
                    &filters,
                    max_results,
                    next_token.as_deref(),
                )
                .await
                .map(Reply::Reservations),
        ),
        Action::StopInstances { instance_ids } => hangar
            .stop_instances(caller, &instance_ids, dry_run)
            .await
            .map(Reply::StateChanges),
        Action::StartInstances { instance_ids } => hangar
            .start_instances(caller, &instance_ids, dry_run)
            .await
            .map(Reply::StateChanges),
        Action::TerminateInstances { instance_ids } => hangar
            .terminate_instances(caller, &instance_ids, dry_run)
            .await
            .map(Reply::StateChanges),
        Action::CreateImage(input) => hangar
            .create_image(caller, input, dry_run)
            .await
            .map(Reply::ImageId),
        Action::CopyImage(input) => hangar
            .copy_image(caller, input, dry_run)
            .await
            .map(Reply::ImageId),
        Action::CreateStoreImageTask(input) => {
            let output = hangar
                .create_store_image_task(caller, input, dry_run)
                .await?;
            warnings.extend(output.warnings);
            Ok(Reply::ObjectKey(output.object_key))
        }
        Action::DescribeStoreImageTasks(input) => read_only(
            dry_run,
            hangar
                .describe_store_image_tasks(caller, input)
                .await
                .map(Reply::StoreImageTasks),
        ),
        Action::CreateRestoreImageTask(input) => hangar
            .create_restore_image_task(caller, input, dry_run)
            .await
            .map(Reply::ImageId),
        Action::GetImageAncestry { image_id } => hangar
            .get_image_ancestry(caller, &image_id, dry_run)
            .await
            .map(Reply::Ancestry),
        Action::EnableImageDeprecation {
            image_id,
            deprecate_at,
        } => hangar
            .enable_image_deprecation(caller, &image_id, &deprecate_at, dry_run)
            .await
            .map(|()| Reply::Return(true)),
        Action::DisableImageDeprecation { image_id } => hangar
            .disable_image_deprecation(caller, &image_id, dry_run)
            .await
            .map(|()| Reply::Return(true)),
        Action::EnableImageDeregistrationProtection {
            image_id,
            with_cooldown,
        } => hangar
            .enable_image_deregistration_protection(caller, &image_id, with_cooldown, dry_run)
            .await
            .map(Reply::ReturnText),
        Action::DisableImageDeregistrationProtection { image_id } => hangar
            .disable_image_deregistration_protection(caller, &image_id, dry_run)
            .await
            .map(Reply::ReturnText),
        Action::DisableImage { image_id } => hangar
            .disable_image(caller, &image_id, dry_run)
            .await
            .map(|()| Reply::Return(true)),
        Action::EnableImage { image_id } => hangar
            .enable_image(caller, &image_id, dry_run)
            .await
            .map(|()| Reply::Return(true)),
        Action::DescribeImageReferences(input) => hangar
            .describe_image_references(caller, input, dry_run)
            .await
            .map(Reply::ImageReferences),
    }
}
