//! The bus on AWS: EventBridge's `PutEvents`, one entry per put, within a
//! deadline (a route waiting on it answers the platform in time).

use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use broker_domain::bus::{BusEntry, BusUnavailable, EventBus, Put};

pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
    timeout: Duration,
}

impl EventBridgeBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: String, timeout: Duration) -> Self {
        Self {
            client,
            bus_name,
            timeout,
        }
    }
}

impl EventBus for EventBridgeBus {
    fn put<'a>(&'a self, entry: &'a BusEntry) -> Put<'a> {
        Box::pin(async move {
            let request = PutEventsRequestEntry::builder()
                .event_bus_name(&self.bus_name)
                .source(entry.source)
                .detail_type(entry.detail_type)
                .detail(&entry.detail)
                .build();
            let sent = self.client.put_events().entries(request).send();
            match tokio::time::timeout(self.timeout, sent).await {
                Err(_) => Err(BusUnavailable("timeout".into())),
                Ok(Err(error)) => {
                    let error = aws_sdk_eventbridge::error::DisplayErrorContext(&error);
                    tracing::warn!(%error, "EventBridge did not take the event");
                    Err(BusUnavailable("put_events_failed".into()))
                }
                Ok(Ok(output)) => match output.entries().first().and_then(|e| e.error_code()) {
                    Some(code) => Err(BusUnavailable(code.to_owned())),
                    None if output.failed_entry_count() > 0 => {
                        Err(BusUnavailable("refused".into()))
                    }
                    None => Ok(()),
                },
            }
        })
    }
}
