//! Qdrant sync: chain cursor, embedder and Qdrant REST client.
