//! Webhook subscriptions and deliveries, run against SQLite and PostgreSQL.

use std::time::Duration;

use agentd_domain::time;
use agentd_domain::webhook::{
    DeliveryAttempt, DeliveryState, Webhook, WebhookEvent, WebhookSecret,
};
use agentd_domain::{Agent, FailureKind, JobId, JobOutcome, OrganizationId, Usage, WebhookId};
use agentd_storage::{
    CachedResult, ClaimRequest, DeliveryClaim, DeliveryNext, DeliveryTargets, DueDelivery, NewJob,
    Storage, WebhookUpdate,
};

#[macro_use]
mod support;

use support::{new_job, setup, TempDb};

on_every_backend!(
    a_final_status_queues_a_delivery_for_subscribers_only,
    deliveries_are_leased_retried_and_logged,
    resends_reach_active_subscriptions,
    subscriptions_are_scoped_updated_and_deleted,
    cached_and_cancelled_jobs_raise_their_events,
);

fn webhook(agent: &Agent, events: &[WebhookEvent]) -> Webhook {
    let now = time::now();
    Webhook {
        id: WebhookId::new(),
        organization_id: agent.organization_id,
        agent_id: agent.id,
        url: "https://hooks.example.com/agentd".into(),
        events: events.to_vec(),
        secret: WebhookSecret::from_key(&[9; WebhookSecret::GENERATED_KEY_BYTES]),
        description: "test".into(),
        active: true,
        created_at: now,
        updated_at: now,
    }
}

fn claim(owner: &str) -> DeliveryClaim {
    DeliveryClaim {
        owner: owner.into(),
        limit: 10,
        lease: Duration::from_secs(60),
    }
}

fn failure() -> JobOutcome {
    JobOutcome::Failure {
        error_message: "the model refused".into(),
        kind: FailureKind::Upstream,
        usage: Usage::default(),
        cost: 0.0,
    }
}

/// Runs a new job of `agent` to a failure; returns its id.
async fn failed_job(s: &dyn Storage, agent: &Agent) -> JobId {
    let id = s.create_job(new_job(agent)).await.unwrap().job_id();
    let request = ClaimRequest {
        owner: "worker".into(),
        limit: 10,
        lease: Duration::from_secs(30),
        max_attempts: 3,
    };
    s.claim_jobs(&request).await.unwrap();
    s.finish_job(id, &failure()).await.unwrap();
    id
}

fn attempt(status: Option<u16>) -> DeliveryAttempt {
    DeliveryAttempt {
        attempted_at: time::now(),
        response_status: status,
        latency_ms: 12,
        error: status.is_none().then(|| "connection refused".to_owned()),
    }
}

async fn claim_one(s: &dyn Storage, owner: &str) -> DueDelivery {
    let mut due = s.claim_deliveries(&claim(owner)).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    due.pop().unwrap()
}

async fn a_final_status_queues_a_delivery_for_subscribers_only(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let on_failure = webhook(&agent, &[WebhookEvent::JobFailed]);
    let on_success = webhook(&agent, &[WebhookEvent::JobSucceeded]);
    s.create_webhook(&on_failure).await.unwrap();
    s.create_webhook(&on_success).await.unwrap();

    let job = failed_job(s, &agent).await;
    let due = claim_one(s, "d1").await;
    assert_eq!(due.job_id, job);
    assert_eq!(due.webhook_id, on_failure.id);
    assert_eq!(due.event, WebhookEvent::JobFailed);
    assert_eq!(due.attempts_made, 0);
    assert_eq!(due.url, on_failure.url);
    assert_eq!(due.secret, on_failure.secret);
    assert!(s
        .list_deliveries(on_success.id, 0, 10)
        .await
        .unwrap()
        .items
        .is_empty());
    // Leased: nobody else gets it.
    assert!(s.claim_deliveries(&claim("d2")).await.unwrap().is_empty());
}

async fn deliveries_are_leased_retried_and_logged(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let hook = webhook(&agent, &WebhookEvent::ALL);
    s.create_webhook(&hook).await.unwrap();
    failed_job(s, &agent).await;

    let due = claim_one(s, "d1").await;
    // Another owner cannot record an attempt on it.
    assert!(!s
        .record_delivery_attempt(due.id, "d2", &attempt(Some(500)), DeliveryNext::GiveUp)
        .await
        .unwrap());
    assert!(s
        .record_delivery_attempt(
            due.id,
            "d1",
            &attempt(Some(500)),
            DeliveryNext::RetryIn(Duration::ZERO)
        )
        .await
        .unwrap());
    let again = claim_one(s, "d2").await;
    assert_eq!((again.id, again.attempts_made), (due.id, 1));
    s.record_delivery_attempt(
        due.id,
        "d2",
        &attempt(None),
        DeliveryNext::RetryIn(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    // Not due for an hour.
    assert!(s.claim_deliveries(&claim("d1")).await.unwrap().is_empty());
    let page = s.list_deliveries(hook.id, 0, 10).await.unwrap();
    assert_eq!(page.total, 1);
    let delivery = &page.items[0];
    assert_eq!(delivery.state, DeliveryState::Pending);
    assert!(delivery.next_attempt_at.unwrap() > time::now());
    let statuses: Vec<Option<u16>> = delivery
        .attempts
        .iter()
        .map(|a| a.response_status)
        .collect();
    assert_eq!(statuses, vec![Some(500), None]);
    assert_eq!(
        delivery.attempts[1].error.as_deref(),
        Some("connection refused")
    );
    assert_eq!(delivery.attempts[0].latency_ms, 12);
}

async fn resends_reach_active_subscriptions(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let job = failed_job(s, &agent).await;
    let first = webhook(&agent, &[WebhookEvent::JobSucceeded]);
    let second = webhook(&agent, &[WebhookEvent::JobFailed]);
    let inactive = Webhook {
        active: false,
        ..webhook(&agent, &WebhookEvent::ALL)
    };
    for hook in [&first, &second, &inactive] {
        s.create_webhook(hook).await.unwrap();
    }
    let queued = s
        .queue_deliveries(job, WebhookEvent::JobFailed, DeliveryTargets::AllActive)
        .await
        .unwrap();
    assert_eq!(queued, 2);
    let queued = s
        .queue_deliveries(job, WebhookEvent::JobFailed, DeliveryTargets::One(first.id))
        .await
        .unwrap();
    assert_eq!(queued, 1);
    let queued = s
        .queue_deliveries(
            job,
            WebhookEvent::JobFailed,
            DeliveryTargets::One(inactive.id),
        )
        .await
        .unwrap();
    assert_eq!(queued, 0);
    assert_eq!(s.list_deliveries(first.id, 0, 10).await.unwrap().total, 2);
    // Every delivery has its own id (its `webhook-id`).
    let due = s.claim_deliveries(&claim("d")).await.unwrap();
    assert_eq!(due.len(), 3);
    let mut ids: Vec<_> = due.iter().map(|d| d.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    for delivery in &due {
        s.record_delivery_attempt(
            delivery.id,
            "d",
            &attempt(Some(204)),
            DeliveryNext::Delivered,
        )
        .await
        .unwrap();
    }
    let delivered = s.list_deliveries(second.id, 0, 10).await.unwrap();
    assert_eq!(delivered.items[0].state, DeliveryState::Delivered);
    assert_eq!(delivered.items[0].next_attempt_at, None);
    assert!(s.claim_deliveries(&claim("d")).await.unwrap().is_empty());
}

async fn subscriptions_are_scoped_updated_and_deleted(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    let hook = webhook(&agent, &[WebhookEvent::JobFailed]);
    s.create_webhook(&hook).await.unwrap();
    let other_org = OrganizationId::new();
    assert_eq!(
        s.get_webhook(other_org, agent.id, hook.id).await.unwrap(),
        None
    );
    assert_eq!(
        s.get_webhook(agent.organization_id, agent.id, hook.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&hook)
    );
    let updated = s
        .update_webhook(
            agent.organization_id,
            agent.id,
            hook.id,
            WebhookUpdate {
                events: Some(vec![WebhookEvent::JobCancelled, WebhookEvent::JobFailed]),
                active: Some(false),
                ..WebhookUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.url, hook.url);
    assert_eq!(
        updated.events,
        vec![WebhookEvent::JobCancelled, WebhookEvent::JobFailed]
    );
    assert!(!updated.active);
    // Inactive: a final job queues nothing.
    failed_job(s, &agent).await;
    assert_eq!(s.list_deliveries(hook.id, 0, 10).await.unwrap().total, 0);

    let page = s
        .list_webhooks(agent.organization_id, agent.id, 0, 10)
        .await
        .unwrap();
    assert_eq!((page.total, page.items.len()), (1, 1));
    assert!(!s
        .delete_webhook(other_org, agent.id, hook.id)
        .await
        .unwrap());
    assert!(s
        .delete_webhook(agent.organization_id, agent.id, hook.id)
        .await
        .unwrap());
    assert!(s
        .list_webhooks(agent.organization_id, agent.id, 0, 10)
        .await
        .unwrap()
        .items
        .is_empty());
}

async fn cached_and_cancelled_jobs_raise_their_events(db: TempDb) {
    let (db, agent) = setup(db).await;
    let s = db.storage.as_ref();
    s.create_webhook(&webhook(&agent, &WebhookEvent::ALL))
        .await
        .unwrap();
    // A cache hit is created final: its delivery is written with it.
    let cached = NewJob {
        cached: Some(CachedResult {
            outputs: Some(vec![]),
            error_message: None,
            error_kind: None,
        }),
        ..new_job(&agent)
    };
    let cached_id = s.create_job(cached).await.unwrap().job_id();
    let cancelled_id = s.create_job(new_job(&agent)).await.unwrap().job_id();
    s.cancel_job(agent.organization_id, cancelled_id)
        .await
        .unwrap();
    let mut events: Vec<(JobId, WebhookEvent)> = s
        .claim_deliveries(&claim("d"))
        .await
        .unwrap()
        .iter()
        .map(|due| (due.job_id, due.event))
        .collect();
    events.sort_by_key(|(_, event)| event.as_str());
    assert_eq!(
        events,
        vec![
            (cached_id, WebhookEvent::JobCached),
            (cancelled_id, WebhookEvent::JobCancelled)
        ]
    );
}
