# Train the diabetes linear regression in base R: the model contract's training command.
#
#   Rscript train.R --data diabetes.csv --params parameters.json --out outputs/
#
# writes coefficients.json (the model: intercept and one coefficient per feature, which score.py
# reads), metrics.json (mse, rmse, r2 on the test split) and reference.csv (the training features
# and the model's predictions: the drift baseline) into --out. Base R only: no package to install.
# Bad input: one "error: ..." line and exit code 2.

fail <- function(...) {
  cat("error: ", ..., "\n", sep = "", file = stderr())
  quit(status = 2)
}

argument <- function(args, name) {
  at <- match(name, args)
  if (is.na(at) || at == length(args)) fail("missing ", name, " <value>")
  args[[at + 1]]
}

number_parameter <- function(text, name, default) {
  # the training object's numbers, read without a JSON package: "name": <number>
  found <- regmatches(text, regexpr(paste0('"', name, '"[[:space:]]*:[[:space:]]*[-+0-9.eE]+'), text))
  if (length(found) == 0) return(default)
  as.numeric(sub(".*:[[:space:]]*", "", found))
}

json_number <- function(x) sprintf("%.17g", x)

args <- commandArgs(trailingOnly = TRUE)
data_file <- argument(args, "--data")
params_file <- argument(args, "--params")
out <- argument(args, "--out")

features <- c("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
target <- "Y"

if (!file.exists(data_file)) fail(data_file, ": no such file")
if (!file.exists(params_file)) fail(params_file, ": no such parameters file")
frame <- tryCatch(read.csv(data_file), error = function(e) fail(data_file, ": not a readable CSV (", conditionMessage(e), ")"))
missing <- setdiff(c(features, target), names(frame))
if (length(missing) > 0) fail(data_file, ": missing column(s) ", paste(missing, collapse = ", "))
for (column in c(features, target)) {
  if (!is.numeric(frame[[column]]) || any(!is.finite(frame[[column]]))) fail(data_file, ": column '", column, "' holds a value that is not a finite number")
}

params_text <- paste(readLines(params_file, warn = FALSE), collapse = "\n")
test_fraction <- number_parameter(params_text, "test_fraction", 0.2)
seed <- number_parameter(params_text, "seed", 0)
if (!(test_fraction > 0 && test_fraction < 1)) fail("training.test_fraction must be between 0 and 1, got ", test_fraction)

set.seed(seed)
test_rows <- sample(nrow(frame), round(test_fraction * nrow(frame)))
train <- frame[-test_rows, c(features, target)]
test <- frame[test_rows, c(features, target)]
fit <- lm(reformulate(features, response = target), data = train)
if (any(is.na(coef(fit)))) fail("the features are collinear on the training rows: a coefficient is undefined")

predicted <- predict(fit, newdata = test)
mse <- mean((test[[target]] - predicted)^2)
r2 <- 1 - sum((test[[target]] - predicted)^2) / sum((test[[target]] - mean(test[[target]]))^2)

dir.create(out, recursive = TRUE, showWarnings = FALSE)
coefficients <- coef(fit)
writeLines(c(
  "{",
  paste0('  "intercept": ', json_number(coefficients[["(Intercept)"]]), ","),
  paste0('  "features": [', paste0('"', features, '"', collapse = ", "), "],"),
  paste0('  "coefficients": [', paste(json_number(coefficients[features]), collapse = ", "), "],"),
  paste0('  "r_version": "', R.version$major, ".", R.version$minor, '",'),
  paste0('  "train_rows": ', nrow(train), ","),
  paste0('  "test_rows": ', nrow(test)),
  "}"
), file.path(out, "coefficients.json"))
writeLines(c(
  "{",
  paste0('  "mse": ', json_number(mse), ","),
  paste0('  "rmse": ', json_number(sqrt(mse)), ","),
  paste0('  "r2": ', json_number(r2)),
  "}"
), file.path(out, "metrics.json"))
reference <- frame[, features]
reference$prediction <- predict(fit, newdata = frame)
reference[] <- lapply(reference, json_number)  # every digit, as the JSON files have them
write.csv(reference, file.path(out, "reference.csv"), row.names = FALSE, quote = FALSE)
cat(sprintf('{"metrics": {"mse": %s, "r2": %s}, "out": "%s"}\n', json_number(mse), json_number(r2), out))
