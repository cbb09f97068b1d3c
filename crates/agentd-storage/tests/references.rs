//! References and artifacts of jobs, on SQLite and PostgreSQL.

use agentd_domain::{
    AgentName, FileId, FileRef, JobId, JobOutcome, NewAgent, NewAgentVersion, OrganizationId,
    ReferenceId, Usage,
};
use agentd_storage::{
    ClaimRequest, DeleteData, JobReferenceKind, NewJob, NewJobReference, ReferenceAdded,
    ReferenceLookup, Storage,
};

use serde_json::json;
use ReferenceAdded::Added;

mod support;

use support::TempDb;

macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::TempDb::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(db) = super::TempDb::postgres().await {
                        super::$test(db).await;
                    }
                }
            )*
        }
    };
}

/// An organization with one agent and one finished job; returns both ids.
async fn finished_job(s: &dyn Storage) -> (OrganizationId, JobId) {
    let org = s
        .create_organization(OrganizationId::new(), "org")
        .await
        .unwrap()
        .id;
    let (agent, version) = s
        .create_agent(NewAgent {
            organization_id: org,
            name: AgentName::parse("a").unwrap(),
            engine_class_id: "PDFPageSelectionEngine".into(),
            creator_key_id: None,
            first_version: NewAgentVersion {
                version_name: None,
                description: None,
                input_definitions: vec![],
                engine_config: json!({}),
                creator_key_id: None,
            },
        })
        .await
        .unwrap();
    let job = JobId::new();
    s.create_job(NewJob {
        id: job,
        organization_id: org,
        agent_id: agent.id,
        agent_version_id: version.id,
        inputs: vec![],
        metadata: json!({}),
        creator_key_id: None,
        cache_key: None,
        idempotency_key: None,
        cached: None,
        files: vec![],
        awaited: false,
    })
    .await
    .unwrap();
    let claimed = s
        .claim_jobs(&ClaimRequest {
            owner: "w".into(),
            limit: 1,
            lease: std::time::Duration::from_secs(30),
            max_attempts: 2,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let outcome = JobOutcome::Success {
        outputs: vec![],
        usage: Usage::default(),
        cost: 0.0,
    };
    s.finish_job(job, &outcome).await.unwrap();
    (org, job)
}

fn saved(kind: JobReferenceKind, artifact_key: Option<&str>, name: &str) -> NewJobReference {
    NewJobReference {
        id: ReferenceId::new(),
        kind,
        artifact_key: artifact_key.map(str::to_owned),
        file: FileRef {
            id: FileId::new(),
            file_name: name.into(),
            content_type: "application/pdf".into(),
            size: 10,
            sha256: "cd".repeat(32),
        },
    }
}

async fn references_are_found_by_id_and_artifacts_by_key(db: TempDb) {
    let s = db.storage.as_ref();
    let (org, job) = finished_job(s).await;
    let pdf = saved(JobReferenceKind::Reference, None, "pages.pdf");
    let result = saved(
        JobReferenceKind::Artifact,
        Some("agent-job-x/a.json"),
        "a.json",
    );
    assert_eq!(s.add_job_reference(job, &pdf).await.unwrap(), Added);
    assert_eq!(s.add_job_reference(job, &result).await.unwrap(), Added);

    let found = s
        .find_job_reference(org, job, ReferenceLookup::Reference(pdf.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.job_id, job);
    assert_eq!(found.kind, JobReferenceKind::Reference);
    assert_eq!(found.file, pdf.file);
    let artifact = s
        .find_job_reference(org, job, ReferenceLookup::ArtifactKey("agent-job-x/a.json"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(artifact.id, result.id);
    assert_eq!(artifact.file, result.file);

    // An artifact is not a reference, and the other way round.
    let lookups = [
        ReferenceLookup::Reference(result.id),
        ReferenceLookup::ArtifactKey("agent-job-x/b.json"),
        ReferenceLookup::Reference(ReferenceId::new()),
    ];
    for lookup in lookups {
        assert!(s
            .find_job_reference(org, job, lookup)
            .await
            .unwrap()
            .is_none());
    }
    // Another organization, or another job, sees nothing.
    let (other_org, other_job) = finished_job(s).await;
    let by_id = ReferenceLookup::Reference(pdf.id);
    assert!(s
        .find_job_reference(other_org, job, by_id)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .find_job_reference(org, other_job, by_id)
        .await
        .unwrap()
        .is_none());
}

async fn an_artifact_saved_again_replaces_the_earlier_one(db: TempDb) {
    let s = db.storage.as_ref();
    let (org, job) = finished_job(s).await;
    let first = saved(JobReferenceKind::Artifact, Some("k"), "k.json");
    assert_eq!(s.add_job_reference(job, &first).await.unwrap(), Added);
    let again = saved(JobReferenceKind::Artifact, Some("k"), "k.json");
    assert_eq!(
        s.add_job_reference(job, &again).await.unwrap(),
        ReferenceAdded::Replaced(first.file.id)
    );
    let found = s
        .find_job_reference(org, job, ReferenceLookup::ArtifactKey("k"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, again.id);
    assert!(s.recorded_files(&[first.file.id]).await.unwrap().is_empty());
    // The same key in another job is another artifact.
    let (_, other_job) = finished_job(s).await;
    let elsewhere = saved(JobReferenceKind::Artifact, Some("k"), "k.json");
    assert_eq!(
        s.add_job_reference(other_job, &elsewhere).await.unwrap(),
        Added
    );

    let gone = saved(JobReferenceKind::Reference, None, "x.pdf");
    assert_eq!(
        s.add_job_reference(JobId::new(), &gone).await.unwrap(),
        ReferenceAdded::JobGone
    );
    assert!(s.recorded_files(&[gone.file.id]).await.unwrap().is_empty());
}

async fn deleting_a_jobs_data_releases_its_references_and_artifacts(db: TempDb) {
    let s = db.storage.as_ref();
    let (org, job) = finished_job(s).await;
    let pdf = saved(JobReferenceKind::Reference, None, "pages.pdf");
    let image = saved(JobReferenceKind::Reference, None, "page-1.png");
    let result = saved(JobReferenceKind::Artifact, Some("a"), "a.json");
    for reference in [&pdf, &image, &result] {
        assert_eq!(s.add_job_reference(job, reference).await.unwrap(), Added);
    }
    let DeleteData::Deleted {
        files,
        mut references,
        artifacts,
    } = s.delete_job_data(org, job).await.unwrap()
    else {
        panic!("the job is final: its data must be deleted");
    };
    assert!(files.is_empty());
    references.sort();
    let mut expected = vec![pdf.file.id, image.file.id];
    expected.sort();
    assert_eq!(references, expected);
    assert_eq!(artifacts, vec![result.file.id]);
    assert!(s
        .find_job_reference(org, job, ReferenceLookup::Reference(pdf.id))
        .await
        .unwrap()
        .is_none());
    assert!(s
        .recorded_files(&[pdf.file.id, image.file.id, result.file.id])
        .await
        .unwrap()
        .is_empty());
}

on_every_backend!(
    references_are_found_by_id_and_artifacts_by_key,
    an_artifact_saved_again_replaces_the_earlier_one,
    deleting_a_jobs_data_releases_its_references_and_artifacts,
);
