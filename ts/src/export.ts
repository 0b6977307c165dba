export function exportPlan(): string { return ""; }
