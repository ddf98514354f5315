# %% [markdown]
# # Placeholder for 04_reproduce_compare
#
# Written on branch `tutorials`; this stub only lets the `docsite` branch build.

# %%
print("placeholder")
