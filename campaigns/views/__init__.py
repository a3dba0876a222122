"""Campaign pages: templates (editor, preview, test send, blocks, branding), campaigns (builder,
detail with live progress, scheduling, pause/resume/cancel), reviews and reports. Thin: parse,
authorize, one service or selector, render."""
