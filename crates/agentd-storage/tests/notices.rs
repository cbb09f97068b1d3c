//! Notices between processes (PostgreSQL `LISTEN/NOTIFY`): a job that
//! becomes runnable, is cancelled, or ends while someone waits for it is
//! announced at commit to every listener, and
//! a listener whose connection is cut listens again on a new one.

use std::time::Duration;

use agentd_domain::{FailureKind, JobOutcome, Usage};
use agentd_storage::{ClaimRequest, JobNotice, JobNotices, NewJob};
use sqlx::{Connection, PgConnection};

#[macro_use]
mod support;

use support::{new_job, setup, TempDb};

/// Generous: notices arrive in milliseconds, but the machine may be loaded.
const DEADLINE: Duration = Duration::from_secs(60);

async fn next(notices: &mut Box<dyn JobNotices>) -> JobNotice {
    tokio::time::timeout(DEADLINE, notices.next())
        .await
        .expect("a notice within the deadline")
        .expect("a notice, not an error")
}

/// The next notice other than `Runnable` (several jobs may announce it).
async fn next_final(notices: &mut Box<dyn JobNotices>) -> JobNotice {
    loop {
        match next(notices).await {
            JobNotice::Runnable => continue,
            notice => return notice,
        }
    }
}

fn claim() -> ClaimRequest {
    ClaimRequest {
        owner: "w1".into(),
        limit: 1,
        lease: Duration::from_secs(60),
        max_attempts: 3,
    }
}

fn failure() -> JobOutcome {
    JobOutcome::Failure {
        error_message: "no".into(),
        kind: FailureKind::Upstream,
        usage: Usage::default(),
        cost: 0.0,
    }
}

#[tokio::test]
async fn sqlite_sends_no_notices() {
    let db = TempDb::sqlite().await;
    assert!(db.storage.job_notices().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_finished_and_cancelled_jobs_are_announced() {
    let Some(db) = TempDb::postgres().await else {
        return;
    };
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let mut notices = s.job_notices().expect("PostgreSQL sends notices");
    assert_eq!(
        next(&mut notices).await,
        JobNotice::Resumed,
        "the first notice says it listens"
    );

    // A job someone waits for (a sync run) is announced when it ends.
    let awaited = NewJob {
        awaited: true,
        ..new_job(&agent)
    };
    let finished = s.create_job(awaited).await.unwrap().job_id();
    assert_eq!(next(&mut notices).await, JobNotice::Runnable);
    let claimed = s.claim_jobs(&claim()).await.unwrap();
    assert_eq!(claimed[0].id, finished);
    s.finish_job(finished, &failure()).await.unwrap();
    assert_eq!(next(&mut notices).await, JobNotice::Final(finished));

    // Nobody waits for this one: its end is not announced, its cancel
    // (which the process running a job must hear of) is.
    let unwatched = s.create_job(new_job(&agent)).await.unwrap().job_id();
    assert_eq!(s.claim_jobs(&claim()).await.unwrap()[0].id, unwatched);
    s.finish_job(unwatched, &failure()).await.unwrap();
    let cancelled = s.create_job(new_job(&agent)).await.unwrap().job_id();
    s.cancel_job(agent.organization_id, cancelled)
        .await
        .unwrap();
    assert_eq!(next_final(&mut notices).await, JobNotice::Final(cancelled));

    // A batch is one transaction: its jobs are announced once.
    let batch: Vec<_> = (0..5).map(|_| new_job(&agent)).collect();
    s.create_jobs(batch).await.unwrap();
    let last = s.create_job(new_job(&agent)).await.unwrap().job_id();
    s.cancel_job(agent.organization_id, last).await.unwrap();
    let mut runnable = 0;
    loop {
        match next(&mut notices).await {
            JobNotice::Runnable => runnable += 1,
            notice => {
                assert_eq!(notice, JobNotice::Final(last));
                break;
            }
        }
    }
    assert_eq!(
        runnable, 2,
        "one notice for the batch, one for the last job"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_whose_connection_is_cut_listens_again() {
    let Some(db) = TempDb::postgres().await else {
        return;
    };
    let url = db.postgres_url().unwrap();
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let mut notices = s.job_notices().unwrap();
    assert_eq!(next(&mut notices).await, JobNotice::Resumed);

    // Ends the listening session as a restart or a network fault would.
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!terminated.is_empty(), "the listening session was found");

    // An error (the server's "terminating connection") may come first.
    let resumed = loop {
        match tokio::time::timeout(DEADLINE, notices.next())
            .await
            .unwrap()
        {
            Ok(notice) => break notice,
            Err(error) => assert!(error.is_transient(), "{error}"),
        }
    };
    assert_eq!(resumed, JobNotice::Resumed);
    let id = s.create_job(new_job(&agent)).await.unwrap().job_id();
    assert_eq!(next(&mut notices).await, JobNotice::Runnable);
    s.cancel_job(agent.organization_id, id).await.unwrap();
    assert_eq!(next(&mut notices).await, JobNotice::Final(id));
    let _ = admin.close().await;
}
