"""The async Foundry client: HTTP and error mapping, agent versions, responses, streaming."""
