# Sourced by .ci/test. The Lens video tests (rescue-lens/tests/video.rs) encode a real
# H.264 stream with ffmpeg and check what the consoles received with ffprobe (Debian's
# ffmpeg package has both). The tests fail, never skip, when they are missing.
if ! { command -v ffmpeg && command -v ffprobe; } >/dev/null; then
    apt-get update && apt-get install -y --no-install-recommends ffmpeg
fi
