"""AWS adapters: client factory and the platform's resource provisioning."""
