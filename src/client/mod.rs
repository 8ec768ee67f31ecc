//! The client: watches a local folder, pushes its changes, pulls the others'.
