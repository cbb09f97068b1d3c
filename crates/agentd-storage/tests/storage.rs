//! Behaviour every storage backend must have, run against SQLite and PostgreSQL.

use std::time::Duration;

use agentd_domain::{
    AgentDatum, AgentName, Credits, FailureKind, FileId, FileRef, JobId, JobInput, JobOutcome,
    JobStatus, NewAgent, NewAgentVersion, OrganizationId, Usage,
};
use agentd_storage::{
    AgentOrdering, AgentQuery, AgentUpdate, CachedResult, ClaimRequest, Created, DeleteData,
    IdempotencyKey, JobFile, JobQuery, LeaseState, NewJob, Storage,
};
use serde_json::json;

#[macro_use]
mod support;

use support::{agent, new_job, setup, TempDb};

fn claim(owner: &str, lease: Duration) -> ClaimRequest {
    ClaimRequest {
        owner: owner.into(),
        limit: 10,
        lease,
        max_attempts: 2,
    }
}

fn success(cost: f64) -> JobOutcome {
    JobOutcome::Success {
        outputs: vec![AgentDatum {
            key: "output".into(),
            description: String::new(),
            data_type: "application/json".into(),
            value: "{}".into(),
            cost: Some(cost),
        }],
        usage: Usage {
            input_tokens: 10,
            output_tokens: 5,
            cached_input_tokens: 0,
        },
        cost,
    }
}

async fn a_job_is_claimed_once_and_finishing_charges_credits(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    s.set_credits(agent.organization_id, Credits(Some(1.0)))
        .await
        .unwrap();
    let id = s.create_job(new_job(&agent)).await.unwrap().job_id();

    let claimed = s
        .claim_jobs(&claim("w1", Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].status, JobStatus::Started);
    assert_eq!(claimed[0].attempts, 1);
    assert!(s
        .claim_jobs(&claim("w2", Duration::from_secs(30)))
        .await
        .unwrap()
        .is_empty());

    s.finish_job(id, &success(0.25)).await.unwrap();
    // A second finish (a late duplicate) changes nothing.
    s.finish_job(id, &success(0.25)).await.unwrap();
    let job = s.get_job(agent.organization_id, id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Success);
    let codes: Vec<i16> = job.events.iter().map(|e| e.status.code()).collect();
    assert_eq!(codes, vec![0, 1, 3]);
    let org = s
        .get_organization(agent.organization_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(org.credits, Credits(Some(0.75)));
    assert!((org.spent - 0.25).abs() < 1e-9);
}

async fn an_expired_lease_is_retried_then_abandoned(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let id = s.create_job(new_job(&agent)).await.unwrap().job_id();
    let short = Duration::from_millis(1);
    assert_eq!(s.claim_jobs(&claim("dead", short)).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;

    // The lease expired: the job is retried by another worker.
    let again = s.claim_jobs(&claim("w2", short)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    let history = s
        .get_job(agent.organization_id, id)
        .await
        .unwrap()
        .unwrap()
        .events;
    assert!(history
        .iter()
        .any(|e| e.status == JobStatus::Retry && e.error_message.is_some()));
    assert_eq!(
        s.renew_lease(id, "dead", Duration::from_secs(30))
            .await
            .unwrap(),
        LeaseState::Lost
    );

    // Its second worker dies too: with max_attempts 2 it fails.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(s.claim_jobs(&claim("w3", short)).await.unwrap().is_empty());
    let job = s.get_job(agent.organization_id, id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failure);
    assert_eq!(job.error_kind, Some(FailureKind::Internal));
}

async fn cancelling_stops_leases_and_is_final(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let id = s.create_job(new_job(&agent)).await.unwrap().job_id();
    s.claim_jobs(&claim("w1", Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(
        s.cancel_job(agent.organization_id, id).await.unwrap(),
        Some(JobStatus::Cancelled)
    );
    assert_eq!(
        s.renew_lease(id, "w1", Duration::from_secs(30))
            .await
            .unwrap(),
        LeaseState::Cancelled
    );
    s.finish_job(id, &success(1.0)).await.unwrap();
    let job = s.get_job(agent.organization_id, id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(s.cancel_job(OrganizationId::new(), id).await.unwrap(), None);
}

async fn progress_is_recorded_only_while_the_worker_holds_the_job(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let id = s.create_job(new_job(&agent)).await.unwrap().job_id();
    assert!(!s.record_progress(id, "w1", "too early").await.unwrap());
    s.claim_jobs(&claim("w1", Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(!s.record_progress(id, "other", "not mine").await.unwrap());
    assert!(s.record_progress(id, "w1", "batch 1/2 done").await.unwrap());
    s.cancel_job(agent.organization_id, id).await.unwrap();
    assert!(!s.record_progress(id, "w1", "after cancel").await.unwrap());
    let events = s
        .get_job(agent.organization_id, id)
        .await
        .unwrap()
        .unwrap()
        .events;
    let progress: Vec<_> = events
        .iter()
        .filter_map(|e| e.error_message.as_deref().map(|m| (e.status, m)))
        .collect();
    assert_eq!(progress, [(JobStatus::Started, "batch 1/2 done")]);
}

async fn idempotency_keys_return_the_first_job(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let key = |request_hash: &str| {
        Some(IdempotencyKey {
            key: "key-1".into(),
            request_hash: request_hash.into(),
        })
    };
    let mut first = new_job(&agent);
    first.idempotency_key = key("h1");
    let first_id = first.id;
    let mut second = new_job(&agent);
    second.idempotency_key = key("h1");
    assert_eq!(s.create_job(first).await.unwrap(), Created::New(first_id));
    assert_eq!(
        s.create_job(second).await.unwrap(),
        Created::Existing(first_id)
    );
    let mut other_request = new_job(&agent);
    other_request.idempotency_key = key("h2");
    let other_id = other_request.id;
    assert_eq!(
        s.create_job(other_request).await.unwrap(),
        Created::KeyReused(first_id)
    );
    assert!(s
        .get_job(agent.organization_id, other_id)
        .await
        .unwrap()
        .is_none());
}

async fn a_batch_honours_the_idempotency_key_of_each_job(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let keyed_for = |key: &str, request_hash: &str| {
        let mut job = new_job(&agent);
        job.idempotency_key = Some(IdempotencyKey {
            key: key.into(),
            request_hash: request_hash.into(),
        });
        job
    };
    let keyed = |key: &str| keyed_for(key, "same");
    let (a, b) = (keyed("batch#0"), keyed("batch#1"));
    let (a_id, b_id) = (a.id, b.id);
    assert_eq!(
        s.create_jobs(vec![a, b]).await.unwrap(),
        vec![Created::New(a_id), Created::New(b_id)]
    );
    let again = keyed("batch#0");
    let fresh = keyed("batch#2");
    let fresh_id = fresh.id;
    assert_eq!(
        s.create_jobs(vec![again, fresh]).await.unwrap(),
        vec![Created::Existing(a_id), Created::New(fresh_id)]
    );
    // One input set reusing a key for another request refuses the batch whole.
    let unstored = keyed("batch#3");
    let unstored_id = unstored.id;
    assert_eq!(
        s.create_jobs(vec![unstored, keyed_for("batch#1", "other")])
            .await
            .unwrap(),
        vec![Created::KeyReused(b_id)]
    );
    assert!(s
        .get_job(agent.organization_id, unstored_id)
        .await
        .unwrap()
        .is_none());
}

async fn the_cache_finds_the_newest_finished_job_of_the_version(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let id = s.create_job(new_job(&agent)).await.unwrap().job_id();
    assert!(s
        .find_cached(agent.current_version_id, "k1", false)
        .await
        .unwrap()
        .is_none());
    s.claim_jobs(&claim("w", Duration::from_secs(30)))
        .await
        .unwrap();
    s.finish_job(id, &success(0.1)).await.unwrap();
    let hit = s
        .find_cached(agent.current_version_id, "k1", false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.id, id);

    let mut cached = new_job(&agent);
    cached.cached = Some(CachedResult {
        outputs: hit.outputs.clone(),
        error_message: None,
        error_kind: None,
    });
    let cached_id = s.create_job(cached).await.unwrap().job_id();
    let job = s
        .get_job(agent.organization_id, cached_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Cached);
    assert_eq!(job.cost, Some(0.0));
    // Cached jobs are not claimed.
    assert!(s
        .claim_jobs(&claim("w", Duration::from_secs(30)))
        .await
        .unwrap()
        .is_empty());

    // Erased data is not served from the cache.
    assert!(matches!(
        s.delete_job_data(agent.organization_id, id).await.unwrap(),
        DeleteData::Deleted { .. }
    ));
    assert!(s
        .find_cached(agent.current_version_id, "k1", false)
        .await
        .unwrap()
        .is_none());
}

async fn jobs_are_listed_with_filters(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let mut other = new_job(&agent);
    other.metadata = json!({"batch": "8"});
    s.create_jobs(vec![new_job(&agent), other]).await.unwrap();
    let query = |metadata: Vec<(String, serde_json::Value)>| JobQuery {
        metadata,
        limit: 10,
        ..JobQuery::default()
    };
    let all = s
        .list_jobs(agent.organization_id, agent.id, &query(vec![]))
        .await
        .unwrap();
    assert_eq!(all.total, 2);
    let batch = s
        .list_jobs(
            agent.organization_id,
            agent.id,
            &query(vec![("batch".into(), json!("8"))]),
        )
        .await
        .unwrap();
    assert_eq!(batch.total, 1);
    assert_eq!(batch.items[0].metadata, json!({"batch": "8"}));
    let pending = JobQuery {
        statuses: vec![JobStatus::Success],
        limit: 10,
        ..JobQuery::default()
    };
    assert_eq!(
        s.list_jobs(agent.organization_id, agent.id, &pending)
            .await
            .unwrap()
            .total,
        0
    );
}

/// The page total stops at the count cap, pages deep in the list follow
/// the one order (newest first, ties by creation order), and a metadata
/// filter on an object value means equality, not containment.
async fn pages_follow_one_order_and_the_count_stops_at_the_cap(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let jobs: Vec<NewJob> = (0..30)
        .map(|n| {
            let mut job = new_job(&agent);
            job.metadata = json!({"n": n, "tags": {"a": 1, "b": n % 2}});
            job
        })
        .collect();
    s.create_jobs(jobs).await.unwrap();
    let list = |query: JobQuery| async move {
        s.list_jobs(agent.organization_id, agent.id, &query)
            .await
            .unwrap()
    };
    let everything = list(JobQuery {
        limit: 100,
        ..JobQuery::default()
    })
    .await;
    assert_eq!(everything.total, 30);
    let numbers: Vec<i64> = everything
        .items
        .iter()
        .map(|job| job.metadata["n"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, (0..30).rev().collect::<Vec<_>>(), "newest first");

    let capped = list(JobQuery {
        limit: 5,
        count_cap: Some(12),
        ..JobQuery::default()
    })
    .await;
    assert_eq!(capped.total, 12);
    assert_eq!(capped.items.len(), 5);

    let mut paged = Vec::new();
    for offset in (0..30).step_by(7) {
        let page = list(JobQuery {
            limit: 7,
            offset,
            ..JobQuery::default()
        })
        .await;
        paged.extend(page.items.into_iter().map(|job| job.id));
    }
    let all_ids: Vec<JobId> = everything.items.iter().map(|job| job.id).collect();
    assert_eq!(paged, all_ids);

    let oldest_first = list(JobQuery {
        limit: 3,
        offset: 27,
        order_by: vec![(agentd_storage::JobOrderField::CreatedAt, false)],
        ..JobQuery::default()
    })
    .await;
    let numbers: Vec<i64> = oldest_first
        .items
        .iter()
        .map(|job| job.metadata["n"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, vec![27, 28, 29]);

    let by_tags = |tags: serde_json::Value| JobQuery {
        metadata: vec![("tags".into(), tags)],
        limit: 100,
        ..JobQuery::default()
    };
    assert_eq!(list(by_tags(json!({"a": 1, "b": 1}))).await.total, 15);
    assert_eq!(
        list(by_tags(json!({"a": 1}))).await.total,
        0,
        "an object value must be equal, not contained"
    );
}

async fn agents_are_scoped_to_their_organization_and_ordered(db: TempDb) {
    let (db, first) = setup(db).await;
    let s = db.storage.as_ref();
    let second = agent(s, first.organization_id, "B agent").await;
    let stranger = s
        .create_organization(OrganizationId::new(), "other")
        .await
        .unwrap();
    assert!(s.get_agent(stranger.id, first.id).await.unwrap().is_none());
    let query = AgentQuery {
        ordering: AgentOrdering::parse("name").unwrap(),
        limit: 10,
        ..AgentQuery::default()
    };
    let page = s.list_agents(first.organization_id, &query).await.unwrap();
    let names: Vec<&str> = page.items.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, vec!["a", "B agent"]);
    let only = AgentQuery {
        only: Some(vec![second.id]),
        limit: 10,
        ..AgentQuery::default()
    };
    assert_eq!(
        s.list_agents(first.organization_id, &only)
            .await
            .unwrap()
            .total,
        1
    );
}

fn file_ref(name: &str) -> FileRef {
    FileRef {
        id: FileId::new(),
        file_name: name.into(),
        content_type: "image/png".into(),
        size: 3,
        sha256: "ab".repeat(32),
    }
}

/// A job whose input `photo` is the given file.
fn job_with_file(agent: &agentd_domain::Agent, file: JobFile) -> NewJob {
    let id = match &file {
        JobFile::New(file) => file.id,
        JobFile::Existing(id) => *id,
    };
    let mut job = new_job(agent);
    job.inputs.push(JobInput {
        key: "photo".into(),
        description: String::new(),
        data_type: "image/png".into(),
        value: id.to_string(),
        file_name: Some("p.png".into()),
    });
    job.files = vec![file];
    job
}

/// Runs every queued job to success.
async fn finish_all(s: &dyn Storage) {
    for job in s
        .claim_jobs(&claim("w", Duration::from_secs(30)))
        .await
        .unwrap()
    {
        s.finish_job(job.id, &success(0.0)).await.unwrap();
    }
}

async fn a_file_lives_while_a_job_refers_to_it(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let org = agent.organization_id;
    let file = file_ref("p.png");
    let first = s
        .create_job(job_with_file(&agent, JobFile::New(file.clone())))
        .await
        .unwrap()
        .job_id();
    assert_eq!(s.get_file(org, file.id).await.unwrap(), Some(file.clone()));
    // A second job (a cache hit or a run given the file id) shares it.
    let mut reuse = job_with_file(&agent, JobFile::Existing(file.id));
    reuse.cached = Some(CachedResult {
        outputs: Some(vec![]),
        error_message: None,
        error_kind: None,
    });
    let second = s.create_job(reuse).await.unwrap().job_id();
    finish_all(s).await;

    assert_eq!(
        s.delete_job_data(org, first).await.unwrap(),
        DeleteData::Deleted {
            files: vec![],
            references: vec![],
            artifacts: vec![]
        }
    );
    assert!(s.get_file(org, file.id).await.unwrap().is_some());
    assert_eq!(
        s.delete_job_data(org, second).await.unwrap(),
        DeleteData::Deleted {
            files: vec![file.id],
            references: vec![],
            artifacts: vec![]
        }
    );
    assert!(s.get_file(org, file.id).await.unwrap().is_none());
}

async fn deleting_an_agent_releases_the_files_only_its_jobs_used(db: TempDb) {
    let (db, doomed) = setup(db).await;
    let s = db.storage.as_ref();
    let org = doomed.organization_id;
    let kept_agent = agent(s, org, "kept").await;
    let own = file_ref("own.png");
    let shared = file_ref("shared.png");
    let mut job = job_with_file(&doomed, JobFile::New(own.clone()));
    job.files.push(JobFile::New(shared.clone()));
    s.create_jobs(vec![
        job,
        job_with_file(&kept_agent, JobFile::Existing(shared.id)),
    ])
    .await
    .unwrap();

    assert_eq!(
        s.delete_agent(org, doomed.id).await.unwrap(),
        Some(vec![own.id])
    );
    assert!(s.get_file(org, own.id).await.unwrap().is_none());
    assert!(s.get_file(org, shared.id).await.unwrap().is_some());
    assert_eq!(s.delete_agent(org, doomed.id).await.unwrap(), None);
    assert_eq!(
        s.delete_agent(org, kept_agent.id).await.unwrap(),
        Some(vec![shared.id])
    );
}

async fn a_job_seen_again_by_its_idempotency_key_records_no_files(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let first_file = file_ref("a.png");
    let second_file = file_ref("b.png");
    let mut first = job_with_file(&agent, JobFile::New(first_file.clone()));
    let same_request = || {
        Some(IdempotencyKey {
            key: "k".into(),
            request_hash: "h".into(),
        })
    };
    first.idempotency_key = same_request();
    let mut second = job_with_file(&agent, JobFile::New(second_file.clone()));
    second.idempotency_key = same_request();
    s.create_job(first).await.unwrap();
    assert!(matches!(
        s.create_job(second).await.unwrap(),
        Created::Existing(_)
    ));
    let org = agent.organization_id;
    assert!(s.get_file(org, first_file.id).await.unwrap().is_some());
    assert!(s.get_file(org, second_file.id).await.unwrap().is_none());
}

async fn a_fetched_file_is_attached_to_its_unfinished_job(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let org = agent.organization_id;
    let mut job = new_job(&agent);
    job.inputs.push(JobInput {
        key: "photo".into(),
        description: String::new(),
        data_type: "image/png".into(),
        value: "https://example.com/p.png".into(),
        file_name: None,
    });
    let id = s.create_job(job).await.unwrap().job_id();
    let file = file_ref("p.png");
    assert!(s.attach_fetched_file(id, "photo", &file).await.unwrap());
    let stored = s.get_job(org, id).await.unwrap().unwrap();
    let photo = stored.inputs.iter().find(|i| i.key == "photo").unwrap();
    assert_eq!(photo.value, file.id.to_string());
    assert_eq!(photo.file_name.as_deref(), Some("p.png"));
    assert!(s.get_file(org, file.id).await.unwrap().is_some());

    finish_all(s).await;
    let late = file_ref("late.png");
    assert!(!s.attach_fetched_file(id, "photo", &late).await.unwrap());
    assert!(s.get_file(org, late.id).await.unwrap().is_none());
    assert!(!s
        .attach_fetched_file(JobId::new(), "photo", &late)
        .await
        .unwrap());
    assert_eq!(
        s.delete_job_data(org, id).await.unwrap(),
        DeleteData::Deleted {
            files: vec![file.id],
            references: vec![],
            artifacts: vec![]
        }
    );
}

async fn the_sweep_deletes_only_old_unreferenced_file_records(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let org = agent.organization_id;
    let orphan = file_ref("orphan.png");
    s.create_file(org, &orphan).await.unwrap();
    let used = file_ref("used.png");
    s.create_job(job_with_file(&agent, JobFile::New(used.clone())))
        .await
        .unwrap();
    let unknown = FileId::new();
    let mut recorded = s
        .recorded_files(&[orphan.id, used.id, unknown])
        .await
        .unwrap();
    recorded.sort();
    let mut expected = vec![orphan.id, used.id];
    expected.sort();
    assert_eq!(recorded, expected);

    // Within the grace period nothing goes.
    let an_hour_ago = agentd_domain::time::now() - agentd_domain::time::Delta::hours(1);
    assert!(s
        .delete_unreferenced_files(an_hour_ago)
        .await
        .unwrap()
        .is_empty());
    let later = agentd_domain::time::now() + agentd_domain::time::Delta::seconds(1);
    assert_eq!(
        s.delete_unreferenced_files(later).await.unwrap(),
        vec![orphan.id]
    );
    assert!(s.get_file(org, orphan.id).await.unwrap().is_none());
    assert!(s.get_file(org, used.id).await.unwrap().is_some());
}

/// A stopping worker hands its job back: RETRY at once, the attempt not
/// counted, and only while it still holds the job.
async fn a_job_handed_back_is_retried_without_counting_the_attempt(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let org = agent.organization_id;
    let id = s.create_job(new_job(&agent)).await.unwrap().job_id();
    s.claim_jobs(&claim("w1", Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(!s.hand_back_job(id, "w2").await.unwrap(), "not w2's job");
    assert!(s.hand_back_job(id, "w1").await.unwrap());
    assert!(
        !s.hand_back_job(id, "w1").await.unwrap(),
        "handed back twice"
    );

    let job = s.get_job(org, id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Retry);
    assert_eq!(job.attempts, 0);
    let retry = job.events.last().unwrap();
    assert_eq!(retry.status, JobStatus::Retry);
    assert!(retry
        .error_message
        .as_deref()
        .unwrap()
        .contains("shut down"));

    let again = s
        .claim_jobs(&claim("w2", Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    s.cancel_job(org, id).await.unwrap();
    assert!(
        !s.hand_back_job(id, "w2").await.unwrap(),
        "a cancelled job stays cancelled"
    );
    let job = s.get_job(org, id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
}

/// Many workers claim from one queue at once, each on its own connection:
/// every job runs exactly once, has one STARTED event and is charged once.
async fn concurrent_claims_never_take_a_job_twice(db: TempDb) {
    const JOBS: usize = 500;
    const WORKERS: usize = 16;
    const COST: f64 = 0.001;
    let (db, agent) = setup(db).await;
    let org = agent.organization_id;
    db.storage
        .set_credits(org, Credits(Some(10.0)))
        .await
        .unwrap();
    let jobs: Vec<NewJob> = (0..JOBS).map(|_| new_job(&agent)).collect();
    db.storage.create_jobs(jobs).await.unwrap();

    let workers: Vec<_> = (0..WORKERS)
        .map(|n| {
            let storage = db.storage.clone();
            tokio::spawn(async move {
                let request = ClaimRequest {
                    owner: format!("worker-{n}"),
                    limit: 3,
                    lease: Duration::from_secs(600),
                    max_attempts: 3,
                };
                let mut ran = Vec::new();
                loop {
                    let claimed = storage.claim_jobs(&request).await.unwrap();
                    if claimed.is_empty() {
                        return ran;
                    }
                    for job in claimed {
                        assert_eq!(job.status, JobStatus::Started);
                        storage.finish_job(job.id, &success(COST)).await.unwrap();
                        ran.push(job.id);
                    }
                }
            })
        })
        .collect();
    let mut ran = Vec::new();
    for worker in workers {
        ran.extend(worker.await.unwrap());
    }
    let distinct: std::collections::HashSet<JobId> = ran.iter().copied().collect();
    assert_eq!(distinct.len(), ran.len(), "a job was claimed twice");
    assert_eq!(ran.len(), JOBS, "every job ran");

    let listed = db
        .storage
        .list_jobs(
            org,
            agent.id,
            &JobQuery {
                limit: JOBS as i64,
                ..JobQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.total, JOBS as i64);
    for job in &listed.items {
        assert_eq!(job.attempts, 1);
        let codes: Vec<i16> = job.events.iter().map(|e| e.status.code()).collect();
        assert_eq!(codes, vec![0, 1, 3], "events of {}", job.id);
    }
    let found = db.storage.get_organization(org).await.unwrap().unwrap();
    let spent = COST * JOBS as f64;
    assert!((found.spent - spent).abs() < 1e-9, "spent {}", found.spent);
    assert!((found.credits.0.unwrap() - (10.0 - spent)).abs() < 1e-9);

    // Setting the credits sets the balance and keeps what was spent; later
    // charges count against the new balance.
    db.storage
        .set_credits(org, Credits(Some(2.0)))
        .await
        .unwrap();
    let found = db.storage.get_organization(org).await.unwrap().unwrap();
    assert_eq!(found.credits, Credits(Some(2.0)));
    assert!((found.spent - spent).abs() < 1e-9, "spent {}", found.spent);
    let id = db
        .storage
        .create_job(new_job(&agent))
        .await
        .unwrap()
        .job_id();
    db.storage
        .claim_jobs(&claim("last", Duration::from_secs(60)))
        .await
        .unwrap();
    db.storage.finish_job(id, &success(0.5)).await.unwrap();
    let found = db.storage.get_organization(org).await.unwrap().unwrap();
    assert!((found.credits.0.unwrap() - 1.5).abs() < 1e-9);
    assert!((found.spent - (spent + 0.5)).abs() < 1e-9);
    let context = db
        .storage
        .run_context(org, agent.id, agent.current_version_id)
        .await
        .unwrap()
        .unwrap();
    assert!((context.credits.0.unwrap() - 1.5).abs() < 1e-9);
}

/// Requests with one idempotency key racing each other create one job.
async fn racing_idempotent_submissions_create_one_job(db: TempDb) {
    let (db, agent) = setup(db).await;
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let storage = db.storage.clone();
            let mut job = new_job(&agent);
            job.idempotency_key = Some(IdempotencyKey {
                key: "race".into(),
                request_hash: "same request".into(),
            });
            tokio::spawn(async move { storage.create_job(job).await.unwrap() })
        })
        .collect();
    let mut created = Vec::new();
    for racer in racers {
        created.push(racer.await.unwrap());
    }
    let new: Vec<JobId> = created
        .iter()
        .filter_map(|c| match c {
            Created::New(id) => Some(*id),
            Created::Existing(_) | Created::KeyReused(_) => None,
        })
        .collect();
    assert_eq!(new.len(), 1, "{created:?}");
    assert!(created.iter().all(|c| c.job_id() == new[0]));
    let listed = db
        .storage
        .list_jobs(
            agent.organization_id,
            agent.id,
            &JobQuery {
                limit: 100,
                ..JobQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.total, 1);
}

/// Name and search filters ignore case and take `%` and `_` literally.
async fn agent_filters_ignore_case_and_wildcards(db: TempDb) {
    let (db, first) = setup(db).await;
    let s = db.storage.as_ref();
    let org = first.organization_id;
    agent(s, org, "Invoice Reader").await;
    let named = |name: &str| AgentQuery {
        name: Some(name.into()),
        limit: 10,
        ..AgentQuery::default()
    };
    let found = s.list_agents(org, &named("invoice r")).await.unwrap();
    assert_eq!(found.total, 1);
    assert_eq!(found.items[0].name.as_str(), "Invoice Reader");
    assert_eq!(s.list_agents(org, &named("%")).await.unwrap().total, 0);
    assert_eq!(s.list_agents(org, &named("_")).await.unwrap().total, 0);
    let search = AgentQuery {
        search: Some("MULTIMODAL".into()),
        limit: 10,
        ..AgentQuery::default()
    };
    assert_eq!(s.list_agents(org, &search).await.unwrap().total, 2);
}

/// Job search and metadata filters, and cancelling an agent's jobs.
async fn jobs_are_searched_and_an_agents_jobs_cancelled(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let org = agent.organization_id;
    let mut numbered = new_job(&agent);
    numbered.metadata = json!({"n": 3, "tag": "Blue"});
    let numbered_id = numbered.id;
    s.create_jobs(vec![new_job(&agent), numbered])
        .await
        .unwrap();
    let query = |search: Option<&str>, metadata: Vec<(String, serde_json::Value)>| JobQuery {
        search: search.map(str::to_owned),
        metadata,
        limit: 10,
        ..JobQuery::default()
    };
    let by_number = s
        .list_jobs(org, agent.id, &query(None, vec![("n".into(), json!(3))]))
        .await
        .unwrap();
    assert_eq!(by_number.items.len(), 1);
    assert_eq!(by_number.items[0].id, numbered_id);
    let searched = s
        .list_jobs(org, agent.id, &query(Some("blue"), vec![]))
        .await
        .unwrap();
    assert_eq!(searched.total, 1);
    assert_eq!(
        s.list_jobs(org, agent.id, &query(Some("HELLO"), vec![]))
            .await
            .unwrap()
            .total,
        2
    );

    let mut cancelled = s.cancel_agent_jobs(org, agent.id).await.unwrap();
    cancelled.sort();
    assert_eq!(cancelled.len(), 2);
    assert!(s.cancel_agent_jobs(org, agent.id).await.unwrap().is_empty());
    let job = s.get_job(org, numbered_id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    let codes: Vec<i16> = job.events.iter().map(|e| e.status.code()).collect();
    assert_eq!(codes, vec![0, 5]);
    assert_eq!(
        s.delete_job_data(org, numbered_id).await.unwrap(),
        DeleteData::Deleted {
            files: vec![],
            references: vec![],
            artifacts: vec![]
        }
    );
}

/// Every sort key and filter of the list endpoints is valid SQL on each
/// backend and sorts unfinished jobs first by duration.
async fn every_sort_key_and_list_filter_works(db: TempDb) {
    use agentd_storage::{AgentOrderField, JobOrderField, TimeRange};
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let org = agent.organization_id;
    let finished = s.create_job(new_job(&agent)).await.unwrap().job_id();
    finish_all(s).await;
    let waiting = s.create_job(new_job(&agent)).await.unwrap().job_id();
    let fields = [
        JobOrderField::Id,
        JobOrderField::AgentVersionName,
        JobOrderField::StatusCode,
        JobOrderField::CreatedAt,
        JobOrderField::LastUpdatedAt,
        JobOrderField::Cost,
        JobOrderField::Duration,
        JobOrderField::GraderScore,
    ];
    for field in fields {
        for descending in [false, true] {
            let page = s
                .list_jobs(
                    org,
                    agent.id,
                    &JobQuery {
                        order_by: vec![(field, descending), (JobOrderField::Id, false)],
                        limit: 10,
                        ..JobQuery::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(page.items.len(), 2, "{field:?}");
        }
    }
    let by_duration = s
        .list_jobs(
            org,
            agent.id,
            &JobQuery {
                order_by: vec![(JobOrderField::Duration, false)],
                limit: 10,
                ..JobQuery::default()
            },
        )
        .await
        .unwrap();
    let ids: Vec<JobId> = by_duration.items.iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![waiting, finished]);
    let by_id = JobQuery {
        job_id: Some(finished.to_string()[..8].to_uppercase()),
        job_inputs: Some("HELLO".into()),
        limit: 10,
        ..JobQuery::default()
    };
    let found = s.list_jobs(org, agent.id, &by_id).await.unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].id, finished);

    let an_hour_ago = agentd_domain::time::now() - agentd_domain::time::Delta::hours(1);
    let agents = AgentQuery {
        created: TimeRange {
            from: Some(an_hour_ago),
            to: None,
        },
        most_recent_job: TimeRange {
            from: Some(an_hour_ago),
            to: Some(agentd_domain::time::now()),
        },
        job_count_min: Some(2),
        job_count_max: Some(2),
        ordering: AgentOrdering {
            field: AgentOrderField::Creator,
            descending: false,
        },
        limit: 10,
        ..AgentQuery::default()
    };
    assert_eq!(s.list_agents(org, &agents).await.unwrap().total, 1);
    let by_creator = AgentQuery {
        creator_ids: vec![7],
        limit: 10,
        ..AgentQuery::default()
    };
    assert_eq!(s.list_agents(org, &by_creator).await.unwrap().total, 0);
}

/// Jobs are counted across organizations by status, engine and the model
/// their version names (none when it names none).
async fn jobs_are_counted_by_status_engine_and_model(db: TempDb) {
    let (db, plain) = setup(db).await;
    let s = db.storage.as_ref();
    s.ping().await.unwrap();
    assert!(s.count_jobs().await.unwrap().is_empty());
    let other_org = s
        .create_organization(OrganizationId::new(), "other")
        .await
        .unwrap();
    let with_model = agent(s, other_org.id, "b").await;
    let version = s
        .create_version(
            with_model.id,
            NewAgentVersion {
                version_name: None,
                description: None,
                input_definitions: vec![],
                engine_config: json!({"instruction": "x", "model": "gpt-4.1-mini"}),
                creator_key_id: None,
            },
        )
        .await
        .unwrap();
    for _ in 0..3 {
        s.create_job(new_job(&plain)).await.unwrap();
    }
    for _ in 0..2 {
        s.create_job(NewJob {
            agent_version_id: version.id,
            organization_id: other_org.id,
            ..new_job(&with_model)
        })
        .await
        .unwrap();
    }
    let claimed = s
        .claim_jobs(&ClaimRequest {
            limit: 1,
            ..claim("w", Duration::from_secs(60))
        })
        .await
        .unwrap();
    s.finish_job(claimed[0].id, &success(0.5)).await.unwrap();
    let mut counts: Vec<_> = s
        .count_jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.status, c.engine_class_id, c.model, c.count))
        .collect();
    counts.sort_by_key(|(status, _, model, _)| (model.clone(), status.code()));
    let engine = "MultimodalExtractionEngine".to_owned();
    let (finished_model, pending_left) = if claimed[0].agent_id == plain.id {
        (None, [(None, 2), (Some("gpt-4.1-mini".to_owned()), 2)])
    } else {
        (
            Some("gpt-4.1-mini".to_owned()),
            [(None, 3), (Some("gpt-4.1-mini".to_owned()), 1)],
        )
    };
    let mut expected: Vec<_> = pending_left
        .into_iter()
        .map(|(model, count)| (JobStatus::Pending, engine.clone(), model, count))
        .collect();
    expected.push((JobStatus::Success, engine.clone(), finished_model, 1));
    expected.sort_by_key(|(status, _, model, _)| (model.clone(), status.code()));
    assert_eq!(counts, expected);
}

async fn usage_is_grouped_by_day_and_model(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let other_org = s
        .create_organization(OrganizationId::new(), "other")
        .await
        .unwrap();
    let stranger = agent_with_model(s, other_org.id, None).await;
    let with_model = agent_with_model(s, agent.organization_id, Some("gpt-test")).await;
    let before = agentd_domain::time::now();
    for (owner, cost) in [(&agent, 0.5), (&with_model, 0.25), (&with_model, 0.125)] {
        let id = s
            .create_job(NewJob {
                cache_key: None,
                ..new_job(owner)
            })
            .await
            .unwrap()
            .job_id();
        s.finish_job(id, &success(cost)).await.unwrap();
    }
    s.create_job(NewJob {
        cache_key: None,
        ..new_job(&stranger)
    })
    .await
    .unwrap();

    let buckets = s.usage_since(agent.organization_id, before).await.unwrap();
    let today = agentd_domain::time::format(&agentd_domain::time::now())[..10].to_owned();
    let summary: Vec<(String, String, i64, f64, i64)> = buckets
        .iter()
        .map(|b| {
            (
                b.day.clone(),
                b.model.clone(),
                b.jobs,
                b.cost,
                b.input_tokens,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (today.clone(), "default".to_owned(), 1, 0.5, 10),
            (today.clone(), "gpt-test".to_owned(), 2, 0.375, 20),
        ]
    );
    let later = agentd_domain::time::now() + Duration::from_secs(24 * 3600);
    assert!(s
        .usage_since(agent.organization_id, later)
        .await
        .unwrap()
        .is_empty());
}

async fn agent_with_model(
    storage: &dyn Storage,
    org: OrganizationId,
    model: Option<&str>,
) -> agentd_domain::Agent {
    let mut engine_config = json!({"instruction": "x"});
    if let Some(model) = model {
        engine_config["model"] = json!(model);
    }
    storage
        .create_agent(NewAgent {
            organization_id: org,
            name: AgentName::parse("with model").unwrap(),
            engine_class_id: "MultimodalExtractionEngine".into(),
            creator_key_id: None,
            first_version: NewAgentVersion {
                version_name: None,
                description: None,
                input_definitions: vec![],
                engine_config,
                creator_key_id: None,
            },
        })
        .await
        .unwrap()
        .0
}

async fn an_earlier_version_can_be_made_current_again(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let first = agent.current_version_id;
    let second = s
        .create_version(
            agent.id,
            NewAgentVersion {
                version_name: Some("second".into()),
                description: None,
                input_definitions: vec![],
                engine_config: json!({"instruction": "y"}),
                creator_key_id: None,
            },
        )
        .await
        .unwrap();
    let org = agent.organization_id;
    assert_eq!(
        s.get_agent(org, agent.id)
            .await
            .unwrap()
            .unwrap()
            .current_version_id,
        second.id
    );
    let update = AgentUpdate {
        current_version_id: Some(first),
        ..AgentUpdate::default()
    };
    let updated = s
        .update_agent(org, agent.id, update)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.current_version_id, first);
    assert_eq!(
        updated.name, agent.name,
        "other fields are left as they were"
    );
}

on_every_backend!(
    an_earlier_version_can_be_made_current_again,
    usage_is_grouped_by_day_and_model,
    jobs_are_counted_by_status_engine_and_model,
    every_sort_key_and_list_filter_works,
    a_job_is_claimed_once_and_finishing_charges_credits,
    an_expired_lease_is_retried_then_abandoned,
    cancelling_stops_leases_and_is_final,
    idempotency_keys_return_the_first_job,
    progress_is_recorded_only_while_the_worker_holds_the_job,
    a_batch_honours_the_idempotency_key_of_each_job,
    the_cache_finds_the_newest_finished_job_of_the_version,
    jobs_are_listed_with_filters,
    pages_follow_one_order_and_the_count_stops_at_the_cap,
    agents_are_scoped_to_their_organization_and_ordered,
    a_file_lives_while_a_job_refers_to_it,
    deleting_an_agent_releases_the_files_only_its_jobs_used,
    a_job_seen_again_by_its_idempotency_key_records_no_files,
    a_fetched_file_is_attached_to_its_unfinished_job,
    the_sweep_deletes_only_old_unreferenced_file_records,
    concurrent_claims_never_take_a_job_twice,
    a_job_handed_back_is_retried_without_counting_the_attempt,
    racing_idempotent_submissions_create_one_job,
    agent_filters_ignore_case_and_wildcards,
    jobs_are_searched_and_an_agents_jobs_cancelled,
);
