//! Degradation switches: flipped under load, flips as events and metrics, levels reloaded from
//! a config file (and watched), a bad file refused whole.

mod support;

use std::convert::Infallible;
use std::future::ready;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::future::Ready;
use steadfast_fallback::{
    Degrader, FallbackLayer, FallbackRequest, Flip, FlipEvent, Reason, Reasons, Source, SwitchError,
};

use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};

use support::{Calls, Recorder};

/// One snapshot of a debugging recorder: name, sorted labels, value. Taking it resets the
/// recorder's counters and gauges, so each check takes one and reads it whole.
type Taken = Vec<(String, Vec<(String, String)>, DebugValue)>;

fn take(snapshotter: &Snapshotter) -> Taken {
    let mut taken: Taken = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let mut labels: Vec<(String, String)> = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            (key.key().name().to_owned(), labels, value)
        })
        .collect();
    taken.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    taken
}

/// The value of the metric `name` whose labels include every one of `labels`, if there is
/// one such series (more than one fails).
fn metric<'a>(taken: &'a Taken, name: &str, labels: &[(&str, &str)]) -> Option<&'a DebugValue> {
    let matching: Vec<&DebugValue> = taken
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(key, value)| l.iter().any(|(k, v)| k == key && v == value))
        })
        .map(|(_, _, value)| value)
        .collect();
    assert!(matching.len() <= 1, "{name} {labels:?}: {matching:?}");
    matching.first().copied()
}

/// Every series of the metric `name`, as its sorted labels and value.
fn series<'a>(taken: &'a Taken, name: &str) -> Vec<(Vec<(String, String)>, &'a DebugValue)> {
    taken
        .iter()
        .filter(|(n, ..)| n == name)
        .map(|(_, labels, value)| (labels.clone(), value))
        .collect()
}

fn gauge(value: f64) -> DebugValue {
    DebugValue::Gauge(value.into())
}

/// A listener that records every flip event.
fn record_flips(degrader: &Degrader) -> Arc<Mutex<Vec<FlipEvent>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    degrader.listen(move |event: &FlipEvent| sink.lock().unwrap().push(event.clone()));
    events
}

fn summary(events: &Mutex<Vec<FlipEvent>>) -> Vec<(String, u8, u8, String, String, Source)> {
    events
        .lock()
        .unwrap()
        .iter()
        .map(|event| {
            (
                event.switch.to_string(),
                event.from,
                event.to,
                event.flip.who().to_owned(),
                event.flip.why().to_owned(),
                event.flip.source(),
            )
        })
        .collect()
}

// --- Under load ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_flipped_under_load_gives_real_or_fallback_answers_never_errors() {
    const TASKS: usize = 8;
    let degrader = Degrader::new();
    let flips = Arc::new(AtomicUsize::new(0));
    {
        let flips = flips.clone();
        degrader.listen(move |_: &FlipEvent| {
            flips.fetch_add(1, Ordering::Relaxed);
        });
    }
    let inner = Calls::new();
    let fallback_calls = Calls::new();
    let service = ServiceBuilder::new()
        .layer(
            FallbackLayer::from_fn({
                let fallback_calls = fallback_calls.clone();
                move |request: FallbackRequest<()>| -> Ready<Result<String, io::Error>> {
                    fallback_calls.hit();
                    // Only the switch may send a call here: the inner service never fails.
                    let answer = if request.reason == Reason::Switch {
                        Ok("fallback".to_owned())
                    } else {
                        Err(io::Error::other("fallback ran for another reason"))
                    };
                    ready(answer)
                }
            })
            .on(Reasons::SWITCH | Reasons::ANY_ERROR)
            .switch(degrader.switch("search").unwrap(), 1),
        )
        .service(service_fn({
            let inner = inner.clone();
            move |(): ()| -> Ready<Result<String, Infallible>> {
                inner.hit();
                ready(Ok("real".to_owned()))
            }
        }));

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..TASKS {
        let service = service.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let (mut real, mut fallback, mut errors) = (0_usize, 0_usize, 0_usize);
            while !stop.load(Ordering::Relaxed) {
                match service.clone().oneshot(()).await.as_deref() {
                    Ok("real") => real += 1,
                    Ok("fallback") => fallback += 1,
                    _ => errors += 1,
                }
                tokio::task::yield_now().await;
            }
            (real, fallback, errors)
        }));
    }

    // The flipper runs on its own thread so that busy workers cannot starve it.
    let flipper = {
        let degrader = degrader.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut sets = 0_usize;
            while started.elapsed() < Duration::from_millis(300) {
                let level = u8::from(sets % 2 == 0);
                degrader
                    .set("search", level, Flip::new("load-test", "flap"))
                    .unwrap();
                sets += 1;
                std::thread::yield_now();
            }
            // End in full service.
            degrader
                .set("search", 0, Flip::new("load-test", "done"))
                .unwrap();
            sets
        })
    };
    let sets = flipper.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let (mut real, mut fallback, mut errors) = (0, 0, 0);
    for worker in workers {
        let (r, f, e) = worker.await.unwrap();
        real += r;
        fallback += f;
        errors += e;
    }

    assert_eq!(errors, 0, "every answer is real or the fallback's");
    assert!(real > 0, "real answers seen: {real}");
    assert!(fallback > 0, "fallback answers seen: {fallback}");
    assert_eq!(
        inner.get(),
        real,
        "every real answer, and only those, called the inner service"
    );
    assert_eq!(fallback_calls.get(), fallback);
    // Every set in the loop changed the level; the closing set to 0 did only after a 1.
    assert_eq!(flips.load(Ordering::Relaxed), sets + sets % 2);
    assert_eq!(degrader.get("search").unwrap().level(), 0);
}

// --- Events and metrics -------------------------------------------------------------------

#[test]
fn flips_are_ordered_events_and_metrics_and_repeats_say_nothing() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let events = metrics::with_local_recorder(&recorder, || {
        let degrader = Degrader::new();
        let events = record_flips(&degrader);
        let switch = degrader.switch("recommendations").unwrap();
        assert_eq!(
            metric(
                &take(&snapshotter),
                "steadfast_degradation_level",
                &[("switch", "recommendations")]
            ),
            Some(&gauge(0.0)),
            "a new switch reports level 0"
        );

        assert_eq!(
            degrader
                .set("recommendations", 1, Flip::new("alice", "sale"))
                .unwrap(),
            0
        );
        // The same level again: no event, no count, the gauge as it was.
        assert_eq!(
            degrader
                .set("recommendations", 1, Flip::new("mallory", "noise"))
                .unwrap(),
            1
        );
        assert_eq!(
            degrader
                .set(
                    "recommendations",
                    3,
                    Flip::new("bob", "incident").from_source(Source::Admin)
                )
                .unwrap(),
            1
        );
        assert_eq!(
            degrader
                .set("recommendations", 2, Flip::new("alice", "sale"))
                .unwrap(),
            3
        );
        assert_eq!(switch.level(), 2);
        assert!(switch.is_at_least(2) && !switch.is_at_least(3) && !switch.is_at_least(0));
        // A refused name changes nothing and says nothing.
        assert!(matches!(
            degrader.set("no spaces", 1, Flip::new("alice", "typo")),
            Err(SwitchError::InvalidName(_))
        ));
        events
    });

    assert_eq!(
        summary(&events),
        [
            (
                "recommendations".into(),
                0,
                1,
                "alice".into(),
                "sale".into(),
                Source::Code
            ),
            (
                "recommendations".into(),
                1,
                3,
                "bob".into(),
                "incident".into(),
                Source::Admin
            ),
            (
                "recommendations".into(),
                3,
                2,
                "alice".into(),
                "sale".into(),
                Source::Code
            ),
        ]
    );
    let taken = take(&snapshotter);
    assert_eq!(
        metric(
            &taken,
            "steadfast_degradation_level",
            &[("switch", "recommendations")]
        ),
        Some(&gauge(2.0))
    );
    let label = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert_eq!(
        series(&taken, "steadfast_degradation_flips_total"),
        [
            (
                label(&[
                    ("source", "admin"),
                    ("switch", "recommendations"),
                    ("who", "bob")
                ]),
                &DebugValue::Counter(1)
            ),
            (
                label(&[
                    ("source", "code"),
                    ("switch", "recommendations"),
                    ("who", "alice")
                ]),
                &DebugValue::Counter(2)
            ),
        ],
        "the repeated set counted nothing, the refused name made no series, and the free-text \
         why is no label"
    );
    assert!(series(&taken, "steadfast_degradation_level")
        .iter()
        .all(|(labels, _)| labels == &label(&[("switch", "recommendations")])));
}

#[test]
fn set_all_flips_as_one_and_cuts_long_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let who = "é".repeat(40); // 80 bytes: cut to 64 on a character boundary
    let why = "a reason as long as an operator cares to write it";
    let events = metrics::with_local_recorder(&recorder, || {
        let degrader = Degrader::new();
        let events = record_flips(&degrader);
        degrader.set("b", 1, Flip::new("ops", "earlier")).unwrap();
        let flip = Flip::new(who.clone(), why);
        assert_eq!(
            degrader.set_all([("a", 2), ("b", 1), ("c", 0)], &flip),
            Ok(1)
        );
        // A bad name anywhere: nothing changes, nothing is said.
        assert!(degrader
            .set_all([("a", 0), ("bad name", 1)], &flip)
            .is_err());
        assert_eq!(
            degrader
                .levels()
                .iter()
                .map(|(name, level)| (name.to_string(), *level))
                .collect::<Vec<_>>(),
            [("b".into(), 1), ("a".into(), 2), ("c".into(), 0)]
        );
        events
    });
    assert_eq!(
        summary(&events)
            .into_iter()
            .map(|(switch, from, to, ..)| (switch, from, to))
            .collect::<Vec<_>>(),
        [("b".into(), 0, 1), ("a".into(), 0, 2)]
    );
    assert_eq!(
        events.lock().unwrap()[1].flip.why(),
        why,
        "events keep the whole why"
    );
    let cut = "é".repeat(32);
    let taken = take(&snapshotter);
    assert_eq!(
        metric(
            &taken,
            "steadfast_degradation_flips_total",
            &[("switch", "a"), ("who", cut.as_str())]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        metric(&taken, "steadfast_degradation_level", &[("switch", "c")]),
        Some(&gauge(0.0))
    );
}

#[test]
fn fallback_answers_and_failures_are_counted_by_reason() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let degrader = Degrader::new();
            let fallback = Recorder::<bool>::new();
            let inner = Calls::new();
            let service = ServiceBuilder::new()
                .layer(
                    FallbackLayer::from_fn(fallback.answer("fallback"))
                        .keep(|fail: &bool| *fail)
                        .switch(degrader.switch("recs").unwrap(), 1)
                        .name("recs"),
                )
                .service(service_fn({
                    let inner = inner.clone();
                    move |fail: bool| {
                        inner.hit();
                        ready(if fail { Err("boom") } else { Ok("real") })
                    }
                }));
            assert_eq!(service.clone().oneshot(false).await.unwrap(), "real");
            assert_eq!(service.clone().oneshot(true).await.unwrap(), "fallback");
            degrader.set("recs", 1, Flip::new("t", "t")).unwrap();
            for _ in 0..3 {
                assert_eq!(service.clone().oneshot(false).await.unwrap(), "fallback");
            }
            assert_eq!(inner.get(), 2);

            let failing = FallbackLayer::from_fn(fallback.fail::<&'static str>("down"))
                .keep(|fail: &bool| *fail)
                .name("failing")
                .layer(service_fn(|_: bool| ready(Err::<&str, _>("boom"))));
            assert!(failing.oneshot(true).await.is_err());
        });
    });
    let taken = take(&snapshotter);
    let count = |name: &str, fallback: &str, reason: &str| {
        metric(&taken, name, &[("fallback", fallback), ("reason", reason)])
    };
    assert_eq!(
        count("steadfast_fallback_total", "recs", "switch"),
        Some(&DebugValue::Counter(3))
    );
    assert_eq!(
        count("steadfast_fallback_total", "recs", "error"),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        count("steadfast_fallback_failures_total", "failing", "error"),
        Some(&DebugValue::Counter(1))
    );
    // A fallback is counted when it is called, whether or not it then fails.
    assert_eq!(
        count("steadfast_fallback_total", "failing", "error"),
        Some(&DebugValue::Counter(1))
    );
}

/// A listener may react to a flip by flipping another switch (a cascade: checkout degraded
/// sheds recommendations too). That must neither deadlock nor reorder events.
#[test]
fn a_listener_may_flip_another_switch() {
    let degrader = Degrader::new();
    let cascade = degrader.clone();
    degrader.listen(move |event: &FlipEvent| {
        if &*event.switch == "checkout" && event.to >= 2 {
            cascade
                .set(
                    "recommendations",
                    1,
                    Flip::new("cascade", "checkout degraded"),
                )
                .unwrap();
        }
    });
    let events = record_flips(&degrader);
    let (done, finished) = std::sync::mpsc::channel();
    let flipper = degrader.clone();
    // On its own thread, so that a deadlock fails the test instead of hanging it.
    std::thread::spawn(move || {
        flipper
            .set("checkout", 2, Flip::new("ops", "incident"))
            .unwrap();
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(2))
        .expect("deadlock: the flip made from a listener never returned");
    assert_eq!(degrader.get("recommendations").unwrap().level(), 1);
    assert_eq!(
        summary(&events)
            .into_iter()
            .map(|(switch, from, to, ..)| (switch, from, to))
            .collect::<Vec<_>>(),
        [("checkout".into(), 0, 2), ("recommendations".into(), 0, 1)],
        "events in the order the levels changed"
    );
}

// --- Config files -------------------------------------------------------------------------

#[cfg(feature = "serde")]
mod config {
    use super::*;

    use std::path::Path;

    use steadfast_fallback::config::FallbackConfig;

    fn levels(degrader: &Degrader) -> Vec<(String, u8)> {
        degrader
            .levels()
            .iter()
            .map(|(name, level)| (name.to_string(), *level))
            .collect()
    }

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn reload_applies_a_good_file_and_refuses_a_bad_one_whole() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("degradation.toml");
        metrics::with_local_recorder(&recorder, || {
            let degrader = Degrader::new();
            let events = record_flips(&degrader);
            degrader.switch("untouched").unwrap();
            write(
                &path,
                "[switches]\nrecommendations = 1\nsearch = 2\n\n[endpoints.\"GET /recommendations\"]\nfallback = \"empty_list\"\nswitch = \"recommendations\"\n",
            );
            assert_eq!(degrader.reload(&path), Ok(2));
            let good = vec![
                ("untouched".to_owned(), 0),
                ("recommendations".to_owned(), 1),
                ("search".to_owned(), 2),
            ];
            assert_eq!(levels(&degrader), good);
            assert_eq!(
                summary(&events),
                [
                    (
                        "recommendations".into(),
                        0,
                        1,
                        "file:degradation.toml".into(),
                        "config".into(),
                        Source::Config
                    ),
                    (
                        "search".into(),
                        0,
                        2,
                        "file:degradation.toml".into(),
                        "config".into(),
                        Source::Config
                    ),
                ]
            );
            // The same file again changes nothing.
            assert_eq!(degrader.reload(&path), Ok(0));

            let bad = [
                // A level out of range, next to a good change that must not apply.
                ("[switches]\nrecommendations = 300\nsearch = 0\n", "switches.recommendations"),
                // A bad switch name, next to a good change.
                ("[switches]\nsearch = 0\n\"no spaces\" = 1\n", "switches.no spaces"),
                // An unknown section.
                ("[switches]\nsearch = 0\n\n[extras]\nx = 1\n", "extras"),
                // An unknown field in an endpoint.
                (
                    "[switches]\nsearch = 0\n\n[endpoints.\"GET /x\"]\nfallback = \"f\"\ncolour = \"red\"\n",
                    "endpoints.GET /x.colour",
                ),
                // A level of 0 for an endpoint.
                (
                    "[switches]\nsearch = 0\n\n[endpoints.\"GET /x\"]\nfallback = \"f\"\nswitch = \"search\"\nlevel = 0\n",
                    "endpoints.GET /x.level",
                ),
                // A syntax error: no field to name, the message says where.
                ("[switches\nsearch = 0\n", ""),
            ];
            for (text, field) in bad {
                write(&path, text);
                let error = degrader.reload(&path).unwrap_err();
                assert_eq!(error.field(), field, "{text:?}: {error}");
                assert_eq!(error.path(), Some(path.as_path()));
                assert!(
                    error.to_string().contains("degradation.toml"),
                    "the error names the file: {error}"
                );
                if !field.is_empty() {
                    assert!(error.to_string().contains(field), "{error}");
                } else {
                    assert!(error.message().contains("line"), "{error}");
                }
                assert_eq!(levels(&degrader), good, "{text:?} changed a level");
            }
            // A file that is gone.
            let missing = dir.path().join("missing.toml");
            let error = degrader.reload(&missing).unwrap_err();
            assert_eq!(error.field(), "");
            assert_eq!(error.path(), Some(missing.as_path()));
            assert_eq!(levels(&degrader), good);
            assert_eq!(
                events.lock().unwrap().len(),
                2,
                "no refused file flipped anything"
            );

            // A JSON file is read as JSON, and checked the same way.
            let json = dir.path().join("degradation.json");
            write(&json, r#"{"switches": {"search": 256}}"#);
            assert_eq!(
                degrader.reload(&json).unwrap_err().field(),
                "switches.search"
            );
            // A config owns the switches it names: the JSON file drops `recommendations`,
            // which goes back to 0, and sets `search`.
            write(&json, r#"{"switches": {"search": 0}}"#);
            assert_eq!(degrader.reload(&json), Ok(2));
            assert_eq!(degrader.get("search").unwrap().level(), 0);
            assert_eq!(degrader.get("recommendations").unwrap().level(), 0);
        });
        let taken = take(&snapshotter);
        assert_eq!(
            metric(&taken, "steadfast_degradation_reload_failures_total", &[]),
            Some(&DebugValue::Counter(8))
        );
        assert_eq!(
            metric(
                &taken,
                "steadfast_degradation_flips_total",
                &[("switch", "search"), ("who", "file:degradation.json")]
            ),
            Some(&DebugValue::Counter(1))
        );
    }

    #[test]
    fn apply_checks_the_whole_config_first() {
        let degrader = Degrader::new();
        let config = FallbackConfig::from_toml("[switches]\na = 1\nb = 2\n").unwrap();
        assert_eq!(degrader.apply(&config, "deploy"), Ok(2));
        let mut bad = config.clone();
        bad.switches.insert("a".into(), 0);
        bad.switches.insert("not valid".into(), 1);
        let error = degrader.apply(&bad, "deploy").unwrap_err();
        assert_eq!(error.field(), "switches.not valid");
        assert_eq!(
            levels(&degrader),
            [("a".to_owned(), 1), ("b".to_owned(), 2)]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_picks_up_a_changed_file_and_stops_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switches.toml");
        write(&path, "[switches]\nrecommendations = 1\n");
        let degrader = Degrader::new();
        let switch = degrader.switch("recommendations").unwrap();
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let watch = {
            let outcomes = outcomes.clone();
            degrader.watch(path.clone(), Duration::from_millis(20), move |outcome| {
                outcomes
                    .lock()
                    .unwrap()
                    .push(outcome.map_err(|error| error.field().to_owned()));
            })
        };

        /// Polls `done` every 5 ms for up to two seconds.
        async fn eventually(what: &str, done: impl Fn() -> bool) {
            let started = Instant::now();
            while !done() {
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "timed out waiting for {what}"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }

        eventually("the first load", || switch.level() == 1).await;
        // A longer file, so that the size changes even if the clock did not tick.
        write(&path, "[switches]\nrecommendations = 3\nsearch = 2\n");
        eventually("the change", || {
            switch.level() == 3 && degrader.get("search").is_some_and(|s| s.level() == 2)
        })
        .await;
        // A bad file is reported to the callback and changes nothing.
        write(&path, "[switches]\nrecommendations = 300\nsearch = 0\n");
        eventually("the refusal", || {
            outcomes.lock().unwrap().last() == Some(&Err("switches.recommendations".to_owned()))
        })
        .await;
        assert_eq!(switch.level(), 3);
        assert_eq!(degrader.get("search").unwrap().level(), 2);
        assert_eq!(
            outcomes.lock().unwrap().first(),
            Some(&Ok(1)),
            "the first tick loads the file"
        );

        drop(watch);
        let reloads = outcomes.lock().unwrap().len();
        write(&path, "[switches]\nrecommendations = 0\n");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(switch.level(), 3, "a dropped watch reloads nothing");
        assert_eq!(outcomes.lock().unwrap().len(), reloads);
    }
}
