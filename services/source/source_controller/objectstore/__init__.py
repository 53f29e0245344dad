"""Object stores for the Bucket kind: the etag index, provider clients (S3, Azure Blob), the object cache."""
