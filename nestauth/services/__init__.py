"""Domain rules. Services take an AsyncSession and plain values; they never see a Request."""
