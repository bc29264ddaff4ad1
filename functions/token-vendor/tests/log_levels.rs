//! At INFO, a vend logs a line only when it minted: cache hits (L1, L2) are
//! most of the traffic and log at DEBUG, where they cost no ingestion.

mod common;

use common::{Fleet, http};
use lambda_http::http::StatusCode;

#[tokio::test]
async fn at_info_only_the_mint_logs_token_vended_and_cache_hits_log_at_debug() {
    let info = test_support::CapturedLogs::default();
    let debug = test_support::CapturedLogs::default();
    let (info_writer, debug_writer) = (info.clone(), debug.clone());
    let at_info =
        broker_runtime::logging::subscriber(move || info_writer.clone(), "info", false, false);
    let at_debug =
        broker_runtime::logging::subscriber(move || debug_writer.clone(), "debug", false, false);

    let fleet = Fleet::start().await;
    fleet.install_shoptet(21).await;
    let first = fleet.instance().await;
    let second = fleet.instance().await;
    let vend_three_ways = async {
        for instance in [&first, &first, &second] {
            let (status, _, _) = http(instance, "GET", "/tokens/shoptet/21", None).await;
            assert_eq!(status, StatusCode::OK);
        }
    };
    {
        // One subscriber per thread: this test's tasks run on its thread.
        let _guard = tracing::subscriber::set_default(at_info);
        vend_three_ways.await;
    }
    let info = info.text();
    assert_eq!(info.matches("token vended").count(), 1, "{info}");
    assert!(
        info.contains("source=\"Minted\"") || info.contains("source=Minted"),
        "{info}"
    );

    let _guard = tracing::subscriber::set_default(at_debug);
    for instance in [&first, &second] {
        http(instance, "GET", "/tokens/shoptet/21", None).await;
    }
    let debug = debug.text();
    assert_eq!(debug.matches("token vended").count(), 2, "{debug}");
    assert!(
        debug.contains("source=\"L1\"") || debug.contains("source=L1"),
        "{debug}"
    );
}
