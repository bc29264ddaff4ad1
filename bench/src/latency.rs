//! Latencies: the L1 hit through the HTTP handler, and the L2 hit against a
//! raw DynamoDB GetItem on the same item of the same emulator.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use broker_aws::storage::dynamodb::PARTITION_KEY;
use broker_domain::ids::ShopRef;
use lambda_http::Body;
use lambda_http::http::{Request, StatusCode};
use token_vendor::{AwsVendHandler, Source};

use crate::Error;
use crate::fleet::{Fleet, request, shoptet};
use crate::stats::Samples;

/// The L1 request: POST with a JSON body, so the body is parsed too.
const L1_BODY: &str = r#"{"min_ttl_seconds": 60}"#;

/// `handler.handle` for a shop already in L1, `iterations` times. Building
/// the request is outside the timed part; parsing it, vending and rendering
/// the JSON response are inside.
pub async fn l1_handler(
    fleet: &Fleet,
    handler: &AwsVendHandler,
    eshop_id: u64,
    iterations: usize,
) -> Result<Samples, Error> {
    let path = format!("https://broker.example/tokens/shoptet/{eshop_id}");
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let request = Request::builder()
            .method("POST")
            .uri(&path)
            .header("content-type", "application/json")
            .body(Body::from(L1_BODY))?;
        let started = Instant::now();
        let response = handler.handle(request).await?;
        samples.push(started.elapsed());
        if response.status() != StatusCode::OK {
            return Err(format!("L1 request answered {}", response.status()).into());
        }
    }
    if fleet.mints(eshop_id) != 1 {
        return Err("L1 requests reached upstream".into());
    }
    Ok(Samples::new(samples))
}

pub struct L2Latencies {
    /// The first vend of a fresh instance (L1 miss, L2 hit, new SDK client).
    pub first_vend: Samples,
    /// The second vend of that instance, for another shop (L1 miss, L2 hit).
    pub l2_vend: Samples,
    /// A consistent GetItem of the same item on a warm client.
    pub get_item: Samples,
}

/// For each of `samples` pre-built instances: a first vend (shop B), an L2
/// vend (shop A) and a raw GetItem of shop A's item, interleaved so drift in
/// the emulator hits both alike. Construction is never timed.
pub async fn l2_vs_get_item(
    fleet: &Fleet,
    shop_a: u64,
    shop_b: u64,
    samples: usize,
) -> Result<L2Latencies, Error> {
    let (a, b) = (shoptet(shop_a), shoptet(shop_b));
    // Mint both once, so every later vend finds them in the table.
    let minter = fleet.instance().await?;
    for eshop_id in [shop_a, shop_b] {
        fleet.install_shoptet(eshop_id).await?;
        minter.vendor().vend(&request(&shoptet(eshop_id))).await?;
    }
    let mut instances = Vec::with_capacity(samples);
    for _ in 0..samples {
        instances.push(fleet.instance().await?);
    }
    let dynamodb = aws_sdk_dynamodb::Client::new(&fleet.aws);
    let get_item = || async {
        let started = Instant::now();
        let output = dynamodb
            .get_item()
            .table_name(&fleet.target.table)
            .key(PARTITION_KEY, AttributeValue::S(a.key()))
            .consistent_read(true)
            .send()
            .await?;
        let elapsed = started.elapsed();
        output.item().ok_or("the token item is missing")?;
        Ok::<_, Error>(elapsed)
    };
    for _ in 0..10 {
        get_item().await?; // warm the raw client's connection
    }
    let mut first = Vec::with_capacity(samples);
    let mut warm = Vec::with_capacity(samples);
    let mut raw = Vec::with_capacity(samples);
    for (i, instance) in instances.iter().enumerate() {
        first.push(l2_vend(instance, &b).await?);
        if i % 2 == 0 {
            warm.push(l2_vend(instance, &a).await?);
            raw.push(get_item().await?);
        } else {
            raw.push(get_item().await?);
            warm.push(l2_vend(instance, &a).await?);
        }
    }
    if fleet.mints(shop_a) != 1 || fleet.mints(shop_b) != 1 {
        return Err("L2 vends reached upstream".into());
    }
    Ok(L2Latencies {
        first_vend: Samples::new(first),
        l2_vend: Samples::new(warm),
        get_item: Samples::new(raw),
    })
}

/// One vend that must miss L1 and hit L2, timed.
async fn l2_vend(instance: &AwsVendHandler, shop: &ShopRef) -> Result<Duration, Error> {
    let request = request(shop);
    let started = Instant::now();
    let vended = instance.vendor().vend(&request).await?;
    let elapsed = started.elapsed();
    if vended.source != Source::L2 {
        return Err(format!("expected an L2 hit, got {}", vended.source.as_str()).into());
    }
    Ok(elapsed)
}

/// `a / b` as a factor.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}
