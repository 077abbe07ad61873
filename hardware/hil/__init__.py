"""Hardware-in-the-loop: the plant side (a cabin task stepped at the control rate), the
framed link between plant and device, and the fault scenarios that act on it."""
