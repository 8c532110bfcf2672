//! CNB env files and the env each layer contributes.
