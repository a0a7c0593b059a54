use super::*;

#[test]
fn series_at_zero_then_counted_and_rendered() {
    let r = Registry::default();
    let c = r.counter(
        "facteur_test_rejects_total",
        "Refusals by stage.",
        &["stage", "reason"],
    );
    c.register(&["rcpt", "unknown user"]);
    c.register(&["connect", "dns list"]);
    c.inc(&["rcpt", "unknown user"]);
    c.inc(&["rcpt", "unknown user"]);
    let g = r.gauge("facteur_test_queue", "Messages in the queue.", &[]);
    g.with(&[]).set(7);
    let h = r.histogram(
        "facteur_test_size_bytes",
        "Sizes.",
        &["listener"],
        &[100.0, 1000.0],
    );
    h.observe(&["mx"], 50.0);
    h.observe(&["mx"], 500.0);
    h.observe(&["mx"], 5000.0);
    let text = r.render();
    for want in [
        "# TYPE facteur_test_rejects_total counter",
        "facteur_test_rejects_total{stage=\"connect\",reason=\"dns list\"} 0",
        "facteur_test_rejects_total{stage=\"rcpt\",reason=\"unknown user\"} 2",
        "facteur_test_queue 7",
        "facteur_test_size_bytes_bucket{listener=\"mx\",le=\"100\"} 1",
        "facteur_test_size_bytes_bucket{listener=\"mx\",le=\"1000\"} 2",
        "facteur_test_size_bytes_bucket{listener=\"mx\",le=\"+Inf\"} 3",
        "facteur_test_size_bytes_sum{listener=\"mx\"} 5550",
        "facteur_test_size_bytes_count{listener=\"mx\"} 3",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    // The same name is the same family.
    r.counter("facteur_test_rejects_total", "x", &["stage", "reason"])
        .inc(&["connect", "dns list"]);
    assert_eq!(c.get(&["connect", "dns list"]), 1);
}

#[test]
fn label_values_are_escaped() {
    let r = Registry::default();
    r.counter("facteur_t_total", "h", &["v"])
        .inc(&["a\"b\\c\nd"]);
    assert!(
        r.render()
            .contains("facteur_t_total{v=\"a\\\"b\\\\c\\nd\"} 1")
    );
}

#[test]
fn collectors_run_before_each_exposition() {
    let r: &'static Registry = Box::leak(Box::default());
    let g = r.gauge("facteur_t_g", "h", &[]);
    let n = std::sync::atomic::AtomicI64::new(0);
    r.on_collect(move || g.with(&[]).set(n.fetch_add(1, Ordering::Relaxed) + 1));
    assert!(r.render().contains("facteur_t_g 1"));
    assert!(r.render().contains("facteur_t_g 2"));
}

#[test]
fn http_answers() {
    let r = Registry::default();
    r.counter("facteur_t_total", "h", &[]);
    let ok = String::from_utf8(http::answer(
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        &r,
    ))
    .unwrap();
    assert!(
        ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("facteur_t_total 0\n"),
        "{ok}"
    );
    let nf = String::from_utf8(http::answer(b"GET / HTTP/1.1\r\n\r\n", &r)).unwrap();
    assert!(nf.starts_with("HTTP/1.1 404"));
    let bad = String::from_utf8(http::answer(b"POST /metrics HTTP/1.1\r\n\r\n", &r)).unwrap();
    assert!(bad.starts_with("HTTP/1.1 405"));
    assert!(
        String::from_utf8(http::answer(b"", &r))
            .unwrap()
            .starts_with("HTTP/1.1 405")
    );
}
