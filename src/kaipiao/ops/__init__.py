"""Operations: metrics, incident grading, drills, load generation, capacity planning."""
