//! Provider limits shared through the database: two storages opened on one
//! database (as two processes would) never exceed a limit together, on
//! SQLite and PostgreSQL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentd_domain::JobId;
use agentd_storage::provider_limits::Admission;
use agentd_storage::Storage;

#[macro_use]
mod support;

use support::TempDb;

on_every_backend!(
    two_processes_share_one_per_minute_limit,
    two_processes_share_the_slots,
    an_expired_slot_frees_its_place,
);

async fn two_processes_share_one_per_minute_limit(db: TempDb) {
    let other = db.open_again().await;
    let processes: [Arc<dyn Storage>; 2] = [Arc::clone(&db.storage), other];
    let asks: Vec<_> = (0..24)
        .map(|i| {
            let storage = Arc::clone(&processes[i % 2]);
            tokio::spawn(async move { storage.admit_provider_call("openai", 5).await.unwrap() })
        })
        .collect();
    let mut granted = 0;
    for ask in asks {
        match ask.await.unwrap() {
            Admission::Granted => granted += 1,
            Admission::RetryIn(wait) => assert!(
                wait > Duration::ZERO && wait <= Duration::from_secs(60),
                "{wait:?}"
            ),
        }
    }
    assert_eq!(granted, 5, "5 calls a minute between both processes");
    // Another provider has a window of its own.
    assert_eq!(
        processes[1]
            .admit_provider_call("anthropic", 5)
            .await
            .unwrap(),
        Admission::Granted
    );
}

async fn two_processes_share_the_slots(db: TempDb) {
    const MAX_IN_FLIGHT: usize = 3;
    let other = db.open_again().await;
    let processes: [Arc<dyn Storage>; 2] = [Arc::clone(&db.storage), other];
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let storage = Arc::clone(&processes[i % 2]);
            let (in_flight, peak) = (Arc::clone(&in_flight), Arc::clone(&peak));
            tokio::spawn(async move {
                let slot = JobId::new().to_string();
                let lease = Duration::from_secs(60);
                while storage
                    .take_provider_slot("openai", MAX_IN_FLIGHT, &slot, lease)
                    .await
                    .unwrap()
                    != Admission::Granted
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                assert!(storage.renew_provider_slot(&slot, lease).await.unwrap());
                in_flight.fetch_sub(1, Ordering::SeqCst);
                storage.release_provider_slot(&slot).await.unwrap();
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= MAX_IN_FLIGHT, "{peak} calls in flight");
    assert!(peak >= 1);
}

async fn an_expired_slot_frees_its_place(db: TempDb) {
    let storage = &db.storage;
    // A process killed while holding the only slot: its lease has ended.
    assert_eq!(
        storage
            .take_provider_slot("openai", 1, "killed", Duration::ZERO)
            .await
            .unwrap(),
        Admission::Granted
    );
    let live = Duration::from_secs(60);
    assert_eq!(
        storage
            .take_provider_slot("openai", 1, "next", live)
            .await
            .unwrap(),
        Admission::Granted
    );
    assert!(!storage.renew_provider_slot("killed", live).await.unwrap());
    assert!(matches!(
        storage
            .take_provider_slot("openai", 1, "third", live)
            .await
            .unwrap(),
        Admission::RetryIn(_)
    ));
    storage.release_provider_slot("next").await.unwrap();
    assert_eq!(
        storage
            .take_provider_slot("openai", 1, "third", live)
            .await
            .unwrap(),
        Admission::Granted
    );
}
