//! Regions and availability zones: the configured regions, each with three
//! zones named as AWS names them (`us-east-1a`, zone ID `use1-az1`).

use crate::error::{Error, Result};
use crate::filter::{self, Filter};
use crate::service::{Caller, Hangar};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    pub region_name: String,
    pub endpoint: String,
    pub opt_in_status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneInfo {
    pub zone_name: String,
    pub zone_id: String,
    pub region_name: String,
    pub state: String,
    pub opt_in_status: String,
    pub zone_type: String,
}

const ZONE_LETTERS: &[char] = &['a', 'b', 'c'];

/// The AWS partition a region belongs to, by its name's prefix
/// (`cn-north-1` → `aws-cn`, `us-gov-west-1` → `aws-us-gov`); every other
/// region is in `aws`. Used where a region named in a record (an image's
/// source region) may lie outside this deployment.
pub fn partition_of(region: &str) -> &'static str {
    // Longest prefixes first: `us-isob-` must not read as `us-iso-`.
    const PREFIXES: &[(&str, &str)] = &[
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-gov-", "aws-us-gov"),
        ("eusc-", "aws-eusc"),
        ("cn-", "aws-cn"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

/// `us-east-1` → `use1`, `eu-west-2` → `euw2`: AWS's short region code.
fn short_code(region: &str) -> String {
    let parts: Vec<&str> = region.split('-').collect();
    let mut code = String::new();
    for (index, part) in parts.iter().enumerate() {
        if index == 0 || index == parts.len() - 1 {
            code.push_str(part);
        } else if let Some(first) = part.chars().next() {
            code.push(first);
        }
    }
    code
}

impl Hangar {
    pub fn describe_regions(
        &self,
        names: &[String],
        filters: &[Filter],
    ) -> Result<Vec<RegionInfo>> {
        filter::check_limits(filters)?;
        for name in names {
            if !self.settings.regions.contains(name) {
                return Err(Error::InvalidParameterValue(format!(
                    "Invalid region name: {name}"
                )));
            }
        }
        let mut regions = Vec::new();
        for region in &self.settings.regions {
            if !names.is_empty() && !names.contains(region) {
                continue;
            }
            let info = RegionInfo {
                region_name: region.clone(),
                endpoint: format!("ec2.{region}.amazonaws.com"),
                opt_in_status: "opt-in-not-required".into(),
            };
            let mut keep = true;
            for filter in filters {
                let value = match filter.name.as_str() {
                    "region-name" => &info.region_name,
                    "endpoint" => &info.endpoint,
                    "opt-in-status" => &info.opt_in_status,
                    other => return Err(filter::unknown_filter(other)),
                };
                keep &= filter::matches_any(filter, &[value]);
            }
            if keep {
                regions.push(info);
            }
        }
        Ok(regions)
    }

    pub fn describe_availability_zones(
        &self,
        caller: &Caller,
        names: &[String],
        zone_ids: &[String],
        filters: &[Filter],
    ) -> Result<Vec<ZoneInfo>> {
        filter::check_limits(filters)?;
        let region = &caller.region;
        let zones: Vec<ZoneInfo> = ZONE_LETTERS
            .iter()
            .enumerate()
            .map(|(index, letter)| ZoneInfo {
                zone_name: format!("{region}{letter}"),
                zone_id: format!("{}-az{}", short_code(region), index + 1),
                region_name: region.clone(),
                state: "available".into(),
                opt_in_status: "opt-in-not-required".into(),
                zone_type: "availability-zone".into(),
            })
            .collect();
        for name in names {
            if !zones.iter().any(|zone| &zone.zone_name == name) {
                return Err(Error::InvalidParameterValue(format!(
                    "The zone '{name}' does not exist."
                )));
            }
        }
        for id in zone_ids {
            if !zones.iter().any(|zone| &zone.zone_id == id) {
                return Err(Error::InvalidParameterValue(format!(
                    "The zone ID '{id}' does not exist."
                )));
            }
        }
        let mut selected = Vec::new();
        for zone in zones {
            if !names.is_empty() && !names.contains(&zone.zone_name) {
                continue;
            }
            if !zone_ids.is_empty() && !zone_ids.contains(&zone.zone_id) {
                continue;
            }
            let mut keep = true;
            for filter in filters {
                let value = match filter.name.as_str() {
                    "zone-name" => &zone.zone_name,
                    "zone-id" => &zone.zone_id,
                    "region-name" => &zone.region_name,
                    "state" => &zone.state,
                    "opt-in-status" => &zone.opt_in_status,
                    "zone-type" => &zone.zone_type,
                    "group-name" | "network-border-group" => &zone.region_name,
                    other => return Err(filter::unknown_filter(other)),
                };
                keep &= filter::matches_any(filter, &[value]);
            }
            if keep {
                selected.push(zone);
            }
        }
        Ok(selected)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn partitions() {
        use super::partition_of;
        assert_eq!(partition_of("us-east-1"), "aws");
        assert_eq!(partition_of("eu-west-1"), "aws");
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of("us-iso-east-1"), "aws-iso");
        assert_eq!(partition_of("us-isob-east-1"), "aws-iso-b");
    }

    #[test]
    fn short_codes() {
        assert_eq!(super::short_code("us-east-1"), "use1");
        assert_eq!(super::short_code("eu-west-2"), "euw2");
    }
}
