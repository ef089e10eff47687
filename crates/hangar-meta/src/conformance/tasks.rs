//! Checks of the task listings the store and restore operations use.

use hangar_core::model::{Tag, Task, TaskState, TaskWork};
use hangar_core::repo::MetaStore;

use super::{fresh_account, fresh_image_id, fresh_region, ok};
use crate::conformance::records::{fresh_task_id, sample_task};

/// `list_tasks_by_owner` returns one owner's tasks of one region created
/// at or after the given moment, in every state, newest first (ties by ID,
/// descending), as whole records, and follows updates.
pub async fn check_tasks_by_owner(store: &dyn MetaStore) {
    let (region, owner, other_owner) = (fresh_region(), fresh_account(), fresh_account());
    let other_region = fresh_region();
    let task = |created_ms: i64, state: TaskState, region: &str, owner: &str| Task {
        state,
        created_ms,
        updated_ms: created_ms,
        work: TaskWork::StoreImage {
            image_id: fresh_image_id(),
            bucket: "conformance-bucket".to_owned(),
            object_key: "path/ami-0123456789abcdef0.bin".to_owned(),
            object_tags: vec![Tag {
                key: "k".to_owned(),
                value: "v".to_owned(),
            }],
            upload_id: None,
        },
        ..sample_task(&fresh_task_id(), region, owner, "")
    };
    let old = task(1_000, TaskState::Completed, &region, &owner);
    let middle = task(2_000, TaskState::Failed, &region, &owner);
    let newest = task(3_000, TaskState::Queued, &region, &owner);
    let mut tie_a = task(2_500, TaskState::Running, &region, &owner);
    let mut tie_b = task(2_500, TaskState::Queued, &region, &owner);
    // Make the tie's order by ID known.
    if tie_a.task_id > tie_b.task_id {
        std::mem::swap(&mut tie_a.task_id, &mut tie_b.task_id);
    }
    let foreign_owner = task(2_200, TaskState::Queued, &region, &other_owner);
    let foreign_region = task(2_200, TaskState::Queued, &other_region, &owner);
    for task in [
        &middle,
        &foreign_owner,
        &newest,
        &old,
        &tie_b,
        &foreign_region,
        &tie_a,
    ] {
        ok(store.insert_task(task).await, "insert a task");
    }
    let ids = |tasks: &[Task]| tasks.iter().map(|t| t.task_id.clone()).collect::<Vec<_>>();

    let listed = ok(
        store.list_tasks_by_owner(&owner, &region, 0).await,
        "list tasks by owner",
    );
    assert_eq!(
        ids(&listed),
        ids(&[
            newest.clone(),
            tie_b.clone(),
            tie_a.clone(),
            middle.clone(),
            old.clone()
        ]),
        "conformance: list_tasks_by_owner must return the owner's tasks of the region, \
         newest first, ties by ID descending"
    );
    assert_eq!(
        listed[3], middle,
        "conformance: list_tasks_by_owner must return whole records"
    );

    let recent = ok(
        store.list_tasks_by_owner(&owner, &region, 2_000).await,
        "list recent tasks by owner",
    );
    assert_eq!(
        ids(&recent),
        ids(&[newest.clone(), tie_b.clone(), tie_a.clone(), middle.clone()]),
        "conformance: list_tasks_by_owner must leave out tasks created before the bound \
         and keep those created at it"
    );

    let mut updated = newest.clone();
    updated.state = TaskState::Completed;
    updated.progress = 100;
    updated.revision = ok(store.update_task(&updated).await, "update a task");
    let listed = ok(
        store.list_tasks_by_owner(&owner, &region, 3_000).await,
        "list tasks after an update",
    );
    assert_eq!(
        listed,
        vec![updated],
        "conformance: list_tasks_by_owner must see updates"
    );

    let none = ok(
        store
            .list_tasks_by_owner(&fresh_account(), &region, 0)
            .await,
        "list tasks of an owner without any",
    );
    assert!(
        none.is_empty(),
        "conformance: list_tasks_by_owner must return nothing for an owner without tasks"
    );
}
