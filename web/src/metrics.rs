//! Prometheus metrics of the portal, served at `/metrics` (OpenMetrics text): requests and
//! their latency by method, route template and status, and bytes received by uploads.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a request: the route template (`/api/v1/teams/{id}/datasets`), never the raw
/// path, so ids do not multiply the series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// What was uploaded: `dataset` or `plugin`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UploadLabels {
    kind: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The portal's metrics and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<RequestLabels>,
    upload_bytes: Family<UploadLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with the portal's metrics (one per app, so tests do not share counts).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vila2");
        let requests = Family::<RequestLabels, Counter>::default();
        // 1 ms to ~33 s.
        let latency: HistogramFamily<RequestLabels> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        let upload_bytes = Family::<UploadLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests (until the response head) by route template",
            latency.clone(),
        );
        registry.register(
            "upload_bytes",
            "Bytes received by uploads, by kind (dataset, plugin)",
            upload_bytes.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            upload_bytes,
        }
    }

    /// Counts `bytes` received by an upload of `kind`.
    pub fn uploaded(&self, kind: &str, bytes: u64) {
        self.upload_bytes
            .get_or_create(&UploadLabels {
                kind: kind.to_string(),
            })
            .inc_by(bytes);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Middleware (a route layer, so the route template is known) recording each request.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let response = next.run(req).await;
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    metrics.requests.get_or_create(&labels).inc();
    metrics
        .latency
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub async fn endpoint(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}
