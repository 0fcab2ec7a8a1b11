"""Generate and jobs: the Generate panel and its operators, the job list's panel and buttons, results kept with the
.blend, and generating from the 3D scene (rendering control passes, then submitting the job)."""
