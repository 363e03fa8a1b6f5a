"""Editorial timelines (OpenTimelineIO) and render-farm plans."""
