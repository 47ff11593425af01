-- One owner role (runs migrations), one runtime role and one database per
-- service, as deploy/lib.sh creates them. Local passwords equal role names.
CREATE ROLE crm_customers LOGIN PASSWORD 'crm_customers';
CREATE ROLE crm_customers_app LOGIN PASSWORD 'crm_customers_app' NOSUPERUSER NOBYPASSRLS;
CREATE DATABASE crm_customers OWNER crm_customers;
CREATE ROLE crm_sales LOGIN PASSWORD 'crm_sales';
CREATE ROLE crm_sales_app LOGIN PASSWORD 'crm_sales_app' NOSUPERUSER NOBYPASSRLS;
CREATE DATABASE crm_sales OWNER crm_sales;
CREATE ROLE crm_marketing LOGIN PASSWORD 'crm_marketing';
CREATE ROLE crm_marketing_app LOGIN PASSWORD 'crm_marketing_app' NOSUPERUSER NOBYPASSRLS;
CREATE DATABASE crm_marketing OWNER crm_marketing;
CREATE ROLE crm_servicedesk LOGIN PASSWORD 'crm_servicedesk';
CREATE ROLE crm_servicedesk_app LOGIN PASSWORD 'crm_servicedesk_app' NOSUPERUSER NOBYPASSRLS;
CREATE DATABASE crm_servicedesk OWNER crm_servicedesk;
CREATE ROLE crm_reporting LOGIN PASSWORD 'crm_reporting';
CREATE ROLE crm_reporting_app LOGIN PASSWORD 'crm_reporting_app' NOSUPERUSER NOBYPASSRLS;
CREATE DATABASE crm_reporting OWNER crm_reporting;
CREATE ROLE crm_gateway LOGIN PASSWORD 'crm_gateway';
CREATE ROLE crm_gateway_app LOGIN PASSWORD 'crm_gateway_app' NOSUPERUSER NOBYPASSRLS;
CREATE DATABASE crm_gateway OWNER crm_gateway;
