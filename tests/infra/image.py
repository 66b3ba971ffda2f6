"""The project image as the other infra files rely on it: the user its processes run as."""

# infra/Dockerfile creates this user; the Kubernetes pods must run as it.
IMAGE_UID = 10001
