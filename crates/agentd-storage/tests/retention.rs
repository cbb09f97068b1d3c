//! The retention query on SQLite and PostgreSQL: final jobs whose data is
//! kept, finished before a cut-off, and nothing else.

use std::time::Duration;

use agentd_domain::time;
use agentd_domain::{AgentDatum, JobOutcome, Usage};
use agentd_storage::{ClaimRequest, Created, DeleteData};

#[macro_use]
mod support;

use support::{new_job, setup, TempDb};

on_every_backend!(final_jobs_past_the_cut_off_are_found_until_erased);

async fn final_jobs_past_the_cut_off_are_found_until_erased(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let org = agent.organization_id;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let Created::New(id) = s.create_job(new_job(&agent)).await.unwrap() else {
            panic!("a new job");
        };
        ids.push(id);
    }
    let (succeeded, cancelled, pending) = (ids[0], ids[1], ids[2]);
    let claimed = s
        .claim_jobs(&ClaimRequest {
            owner: "w".into(),
            limit: 1,
            lease: Duration::from_secs(30),
            max_attempts: 2,
        })
        .await
        .unwrap();
    assert_eq!(claimed[0].id, succeeded);
    let outcome = JobOutcome::Success {
        outputs: vec![AgentDatum {
            key: "output".into(),
            description: String::new(),
            data_type: "application/json".into(),
            value: "{}".into(),
            cost: Some(0.5),
        }],
        usage: Usage::default(),
        cost: 0.5,
    };
    s.finish_job(succeeded, &outcome).await.unwrap();
    s.cancel_job(org, cancelled).await.unwrap();

    // Nothing finished a day ago.
    let a_day = time::Delta::days(1);
    assert!(s
        .jobs_past_retention(time::now() - a_day, 10)
        .await
        .unwrap()
        .is_empty());
    // A clock a day ahead: both final jobs are past retention, the pending one never.
    let ahead = time::now() + a_day;
    let mut found: Vec<_> = s.jobs_past_retention(ahead, 10).await.unwrap();
    found.sort();
    let mut expected = vec![(org, succeeded), (org, cancelled)];
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(s.jobs_past_retention(ahead, 1).await.unwrap().len(), 1);

    // Erased: a tombstone with its status and cost, no longer found.
    assert!(matches!(
        s.delete_job_data(org, succeeded).await.unwrap(),
        DeleteData::Deleted { .. }
    ));
    assert_eq!(
        s.jobs_past_retention(ahead, 10).await.unwrap(),
        vec![(org, cancelled)]
    );
    let tombstone = s.get_job(org, succeeded).await.unwrap().unwrap();
    assert!(tombstone.data_deleted);
    assert!(tombstone.outputs.is_none());
    assert_eq!(tombstone.status, agentd_domain::JobStatus::Success);
    assert!(!s.get_job(org, pending).await.unwrap().unwrap().data_deleted);
}
