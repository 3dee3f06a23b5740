use mq_core::{Task, TaskOptions};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Task)]
struct EmbedImage {
    product_id: u64,
    url: String,
}

#[derive(Serialize, Deserialize, Task)]
struct HTTPJob;

fn main() {
    assert_eq!(EmbedImage::NAME, "EmbedImage");
    assert_eq!(EmbedImage::QUEUE, "embed_image");
    assert_eq!(EmbedImage::OPTIONS, TaskOptions::DEFAULT);
    assert_eq!(HTTPJob::NAME, "HTTPJob");
    assert_eq!(HTTPJob::QUEUE, "http_job");
    assert_eq!(HTTPJob::OPTIONS, TaskOptions::DEFAULT);
}
