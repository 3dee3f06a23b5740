//! The pipeline's last step: a product is indexed once both its vectors are stored. The demo
//! enqueues each product as a flow ([`mq_core::Producer::flow`]) whose children are its
//! [`EmbedImage`] and [`EmbedText`] tasks and whose parent [`IndexProduct`] marks it indexed
//! ([`INDEXED_KEY`]); the day's products are one run ([`mq_core::Producer::run`]) whose
//! completion task [`DayIndexed`] records that the whole day is indexed ([`DAYS_KEY`]).

use std::collections::HashMap;

use mq_core::{redis::conn::Conn, Task, TaskError};
use serde::{Deserialize, Serialize};

use super::{
    embed::EmbedTask,
    records::{EmbedImage, EmbedText},
    store::vector_key,
};

/// Set of the ids of indexed products.
pub const INDEXED_KEY: &str = "mq-demo:indexed";

/// Set of the names of runs (days) whose every product ended.
pub const DAYS_KEY: &str = "mq-demo:days-indexed";

/// Mark a product indexed (queue `index`): the parent of the product's flow, run once its
/// embedding tasks succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Task)]
#[task(queue = "index", max_retries = 3, backoff = "fixed(100ms)")]
pub struct IndexProduct {
    /// The product.
    pub product_id: u64,
    /// Whether it has an image vector (an image task is among the flow's children).
    pub image: bool,
    /// Whether it has a text vector.
    pub text: bool,
}

/// A day's run ended (queue `index`): its completion task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Task)]
#[task(queue = "index", max_retries = 3, backoff = "fixed(100ms)")]
pub struct DayIndexed {
    /// The run's name.
    pub run: String,
}

/// A product's tasks: its flow's parent and children.
#[derive(Debug, Clone)]
pub struct ProductTasks {
    /// The parent.
    pub index: IndexProduct,
    /// Its image task, if its image part was valid.
    pub image: Option<EmbedImage>,
    /// Its text task, if its text part was valid.
    pub text: Option<EmbedText>,
}

/// The products of `images` and `texts` (each with at least one task), in the order their
/// first task appears.
pub fn products(images: &[EmbedImage], texts: &[EmbedText]) -> Vec<ProductTasks> {
    let mut out: Vec<ProductTasks> = Vec::new();
    let mut at: HashMap<u64, usize> = HashMap::new();
    let mut slot = |id: u64, out: &mut Vec<ProductTasks>| {
        *at.entry(id).or_insert_with(|| {
            out.push(ProductTasks {
                index: IndexProduct {
                    product_id: id,
                    image: false,
                    text: false,
                },
                image: None,
                text: None,
            });
            out.len() - 1
        })
    };
    for t in images {
        let i = slot(t.product_id, &mut out);
        out[i].index.image = true;
        out[i].image = Some(t.clone());
    }
    for t in texts {
        let i = slot(t.product_id, &mut out);
        out[i].index.text = true;
        out[i].text = Some(t.clone());
    }
    out
}

/// Handles an [`IndexProduct`]: checks that the product's vectors are stored (a missing one
/// is retried: it cannot be, its flow ran the parent after the children) and adds it to
/// [`INDEXED_KEY`].
pub async fn index_product(task: IndexProduct, conn: Conn) -> Result<(), TaskError> {
    let mut conn = conn;
    let mut keys = Vec::new();
    if task.image {
        keys.push(vector_key(EmbedImage::KIND, task.product_id));
    }
    if task.text {
        keys.push(vector_key(EmbedText::KIND, task.product_id));
    }
    if !keys.is_empty() {
        let present: u64 = redis::cmd("EXISTS")
            .arg(&keys)
            .query_async(&mut conn)
            .await?;
        if present != keys.len() as u64 {
            return Err(TaskError::retry(format!(
                "product {}: {present} of its {} vectors stored",
                task.product_id,
                keys.len()
            )));
        }
    }
    let _: () = redis::cmd("SADD")
        .arg(INDEXED_KEY)
        .arg(task.product_id)
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// Handles a [`DayIndexed`]: adds the run to [`DAYS_KEY`].
pub async fn day_indexed(task: DayIndexed, conn: Conn) -> Result<(), TaskError> {
    let mut conn = conn;
    let _: () = redis::cmd("SADD")
        .arg(DAYS_KEY)
        .arg(&task.run)
        .query_async(&mut conn)
        .await?;
    Ok(())
}
