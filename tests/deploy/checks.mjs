// The pass/fail tally every check script keeps: check(ok, what) counts a
// pass or records the failure, and returns ok so callers can branch on it.
export function checker() {
  const checks = { failures: [], passed: 0 };
  checks.check = (ok, what) => {
    if (ok) checks.passed++;
    else checks.failures.push(what);
    return ok;
  };
  return checks;
}
